//! Compile-fail tests: bad `#[trace]` arguments are reported at the offending token.

#[test]
fn macro_errors_point_at_the_offending_token() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
