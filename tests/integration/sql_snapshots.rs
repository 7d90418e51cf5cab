//! `strat sql` of every case under tests/cases/sql in every dialect, as insta
//! snapshots: a change to the generated SQL shows up as a diff to review, not
//! only as a failing engine run (tests/integration/sql.rs runs the queries).

use crate::common::{cases, header, stderr, stdout, strat};

const DIALECTS: [&str; 4] = ["spark", "duckdb", "postgres", "datafusion"];

#[test]
fn sql_of_every_case_and_dialect() {
    let files = cases("sql");
    assert!(files.len() >= 10, "the SQL cases are missing");
    for file in files {
        let text = std::fs::read_to_string(crate::common::root().join(&file)).unwrap();
        let name = file
            .trim_start_matches("tests/cases/sql/")
            .trim_end_matches(".strat")
            .to_string();
        let extra = header(&text).args;
        for dialect in DIALECTS {
            let mut args = vec!["sql", file.as_str(), "--dialect", dialect];
            args.extend(extra.iter().map(String::as_str));
            let out = strat(&args);
            assert!(
                out.status.success(),
                "strat sql {file} --dialect {dialect}: {}",
                stderr(&out)
            );
            insta::assert_snapshot!(format!("{name}.{dialect}"), stdout(&out));
        }
    }
}
