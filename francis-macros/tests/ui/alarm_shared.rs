//! An alarm handler taking `&self`.
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
    pub async fn tick(&self, _data: ()) -> Result<(), String> {
        Ok(())
    }
}

fn main() {}
