//! A misspelled argument of `#[francis::actor]`.
use francis::prelude::*;

pub struct Counter {
    value: i64,
}

#[francis::actor(nme = "counter")]
impl Counter {
    fn activate(_ctx: &ActorContext) -> Self {
        Counter { value: 0 }
    }
}

fn main() {}
