//! `pub` associated functions (no `self`) in an actor impl block.
use francis::prelude::*;

pub struct Counter {
    value: i64,
}

#[francis::actor]
impl Counter {
    fn activate(_ctx: &ActorContext) -> Self {
        Counter { value: 0 }
    }

    pub async fn lookup(id: String) -> Result<i64, String> {
        Ok(id.len() as i64)
    }

    pub fn new() -> Self {
        Counter { value: 1 }
    }
}

fn main() {}
