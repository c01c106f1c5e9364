//! `impl Trait` in an argument or in the result.
use francis::prelude::*;

pub struct Counter {
    value: i64,
}

#[francis::actor]
impl Counter {
    fn activate(_ctx: &ActorContext) -> Self {
        Counter { value: 0 }
    }

    pub async fn add(&mut self, by: impl Into<i64> + Send) -> Result<i64, String> {
        self.value += by.into();
        Ok(self.value)
    }

    pub async fn show(&self) -> Result<impl Serialize, String> {
        Ok(self.value)
    }
}

fn main() {}
