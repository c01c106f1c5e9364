//! Borrowed arguments and results.
use francis::prelude::*;

pub struct Counter {
    name: String,
}

#[francis::actor]
impl Counter {
    fn activate(_ctx: &ActorContext) -> Self {
        Counter {
            name: String::new(),
        }
    }

    pub async fn rename(&mut self, name: &str) -> Result<(), String> {
        self.name = name.to_owned();
        Ok(())
    }

    pub async fn name(&self) -> Result<&String, String> {
        Ok(&self.name)
    }
}

fn main() {}
