#[axion::trace(skip(a))]
fn f(a: u32) -> u32 { a }
fn main() {}
