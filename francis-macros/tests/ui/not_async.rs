//! A `pub` method that is not async.
use francis::prelude::*;

pub struct Counter {
    value: i64,
}

#[francis::actor]
impl Counter {
    fn activate(_ctx: &ActorContext) -> Self {
        Counter { value: 0 }
    }

    pub fn get(&self) -> Result<i64, String> {
        Ok(self.value)
    }
}

fn main() {}
