//! A generic actor type.
use francis::prelude::*;

pub struct Cache<T> {
    items: Vec<T>,
}

#[francis::actor]
impl<T: Send + Sync + 'static> Cache<T> {
    fn activate(_ctx: &ActorContext) -> Self {
        Cache { items: Vec::new() }
    }
}

fn main() {}
