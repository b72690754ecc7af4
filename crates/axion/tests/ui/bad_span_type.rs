#[axion::trace(span_type = "llm")]
fn f() {}
fn main() {}
