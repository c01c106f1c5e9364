//! `activate` declared async.
use francis::prelude::*;

pub struct Counter {
    value: i64,
}

#[francis::actor]
impl Counter {
    async fn activate(_ctx: &ActorContext) -> Self {
        Counter { value: 0 }
    }

    pub async fn get(&self) -> Result<i64, String> {
        Ok(self.value)
    }
}

fn main() {}
