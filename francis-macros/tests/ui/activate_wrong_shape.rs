//! `activate` with a receiver, a context by value, or a fallible result.
use francis::prelude::*;

pub struct WithReceiver;

#[francis::actor]
impl WithReceiver {
    fn activate(&self, _ctx: &ActorContext) -> Self {
        WithReceiver
    }
}

pub struct Fallible;

#[francis::actor]
impl Fallible {
    fn activate(_ctx: ActorContext) -> Result<Self, String> {
        Ok(Fallible)
    }
}

fn main() {}
