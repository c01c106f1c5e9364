//! Alarm handlers with no payload argument, or with several.
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
    pub async fn tick(&mut self) -> Result<(), String> {
        Ok(())
    }

    #[alarm]
    pub async fn tock(&mut self, by: i64, note: String) -> Result<(), String> {
        self.value += by;
        let _ = note;
        Ok(())
    }
}

fn main() {}
