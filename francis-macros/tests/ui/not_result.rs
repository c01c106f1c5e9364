//! Methods that do not return `Result<T, E>`.
use francis::prelude::*;

pub struct Counter {
    value: i64,
}

type AppResult<T> = std::result::Result<T, String>;

#[francis::actor]
impl Counter {
    fn activate(_ctx: &ActorContext) -> Self {
        Counter { value: 0 }
    }

    pub async fn get(&self) -> i64 {
        self.value
    }

    pub async fn touch(&mut self) {
        self.value += 1;
    }

    pub async fn aliased(&self) -> AppResult<i64> {
        Ok(self.value)
    }

    pub async fn optional(&self) -> Option<i64> {
        Some(self.value)
    }
}

fn main() {}
