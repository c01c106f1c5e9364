//! Two methods with the same wire name after overrides.
use francis::prelude::*;

pub struct Counter {
    value: i64,
}

#[francis::actor]
impl Counter {
    fn activate(_ctx: &ActorContext) -> Self {
        Counter { value: 0 }
    }

    pub async fn get(&self) -> Result<i64, String> {
        Ok(self.value)
    }

    #[method(name = "get")]
    pub async fn fetch(&self) -> Result<i64, String> {
        Ok(self.value)
    }

    #[alarm(name = "get")]
    pub async fn refresh(&mut self, _data: ()) -> Result<(), String> {
        Ok(())
    }
}

fn main() {}
