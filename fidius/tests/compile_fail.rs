//! Compile errors of the macros, each spanned at the offending token, and the forms
//! they accept that are easy to get wrong. Refresh the expected output with
//! `TRYBUILD=overwrite cargo test -p fidius --test compile_fail`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/ui-pass/*.rs");
}
