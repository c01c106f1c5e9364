//! An alarm handler returning a value.
use francis::prelude::*;

pub struct Counter {
    value: i64,
}

#[francis::actor]
impl Counter {
    fn activate(_ctx: &ActorContext) -> Self {
        Counter { value: 0 }
    }

    #[alarm]
    pub async fn tick(&mut self, by: i64) -> Result<i64, String> {
        self.value += by;
        Ok(self.value)
    }
}

fn main() {}
