#[axion::trace(capture_args, skip(b))]
fn f(a: u32) -> u32 { a }
fn main() {}
