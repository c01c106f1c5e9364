//! Wire names that are empty or contain '/'.
use francis::prelude::*;

pub struct Counter {
    value: i64,
}

#[francis::actor(name = "counters/v2")]
impl Counter {
    fn activate(_ctx: &ActorContext) -> Self {
        Counter { value: 0 }
    }

    #[method(name = "")]
    pub async fn get(&self) -> Result<i64, String> {
        Ok(self.value)
    }

    #[alarm(name = "tick/fast")]
    pub async fn tick(&mut self, _data: ()) -> Result<(), String> {
        Ok(())
    }
}

fn main() {}
