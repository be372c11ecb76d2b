//! The TLS tests are compiled only with the `tls` feature. This test makes
//! sure CI never passes by leaving them out: the README's test command
//! (`cargo test --features tls`) builds them, and under CI a build without
//! the feature fails here instead of silently skipping every TLS test.

#[test]
fn ci_builds_the_tls_tests() {
    let without_tls = !cfg!(feature = "tls");
    if std::env::var_os("CI").is_some() && without_tls {
        panic!(
            "CI runs the tests with --features tls (the README's test command); this build has no TLS"
        );
    }
}
