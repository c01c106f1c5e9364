//! Method names that `ActorRef` would hide, and a clash between generated proxy methods.
use francis::prelude::*;

pub struct Counter {
    value: i64,
}

#[francis::actor]
impl Counter {
    fn activate(_ctx: &ActorContext) -> Self {
        Counter { value: 0 }
    }

    pub async fn raw(&self) -> Result<i64, String> {
        Ok(self.value)
    }

    pub async fn alarm_tick(&self) -> Result<(), String> {
        Ok(())
    }

    #[alarm]
    pub async fn tick(&mut self, _data: ()) -> Result<(), String> {
        Ok(())
    }
}

fn main() {}
