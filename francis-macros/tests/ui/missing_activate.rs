//! An actor without `activate`.

pub struct Counter {
    value: i64,
}

#[francis::actor]
impl Counter {
    pub async fn get(&self) -> Result<i64, String> {
        Ok(self.value)
    }
}

fn main() {}
