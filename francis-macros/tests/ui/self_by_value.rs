//! A method taking `self` by value.
use francis::prelude::*;

pub struct Counter {
    value: i64,
}

#[francis::actor]
impl Counter {
    fn activate(_ctx: &ActorContext) -> Self {
        Counter { value: 0 }
    }

    pub async fn finish(self) -> Result<i64, String> {
        Ok(self.value)
    }
}

fn main() {}
