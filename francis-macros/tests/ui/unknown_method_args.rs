//! Unknown arguments of `#[alarm]` and `#[method]`, and both on one function.
use francis::prelude::*;

pub struct Counter {
    value: i64,
}

#[francis::actor]
impl Counter {
    fn activate(_ctx: &ActorContext) -> Self {
        Counter { value: 0 }
    }

    #[alarm(foo)]
    pub async fn tick(&mut self, _data: ()) -> Result<(), String> {
        Ok(())
    }

    #[method(nam = "x")]
    pub async fn get(&self) -> Result<i64, String> {
        Ok(self.value)
    }

    #[method]
    #[alarm]
    pub async fn both(&mut self, _data: ()) -> Result<(), String> {
        Ok(())
    }
}

fn main() {}
