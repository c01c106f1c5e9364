//! Generic actor methods (type parameter, lifetime, where clause).
use francis::prelude::*;

pub struct Counter {
    value: i64,
}

#[francis::actor]
impl Counter {
    fn activate(_ctx: &ActorContext) -> Self {
        Counter { value: 0 }
    }

    pub async fn add<T: Into<i64> + Send>(&mut self, by: T) -> Result<i64, String> {
        self.value += by.into();
        Ok(self.value)
    }

    pub async fn label<'a>(&'a self) -> Result<String, String> {
        Ok(self.value.to_string())
    }
}

fn main() {}
