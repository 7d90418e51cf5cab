//! Quoting and hashing, without an engine (the exporter's runs on real engines
//! are in tests/integration/sql_native.rs and sql.rs).

use super::*;

#[test]
fn quoting() {
    assert_eq!(Dialect::DuckDb.ident("a\"b"), "\"a\"\"b\"");
    assert_eq!(Dialect::Spark.ident("a`b"), "`a``b`");
    assert_eq!(Dialect::Postgres.string("it's \\"), "'it''s \\'");
    assert_eq!(Dialect::Spark.string("it's \\"), "'it\\'s \\\\'");
    assert_eq!(
        Dialect::DuckDb.qualified("prod.members"),
        "\"prod\".\"members\""
    );
    assert_eq!(md5_hex("1:42"), "a15a53f9499ea49862040e62fd86bcc1");
}
