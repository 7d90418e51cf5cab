//! Library error texts as strat shows them: without the category prefixes
//! that Arrow, Parquet, object_store and DataFusion wrap around one another
//! ("Parquet error: Parquet error: …", "Object Store error: Generic
//! LocalFileSystem error: …") and without the OS's "(os error N)" suffix. The
//! message that remains is the library's own words; strat's message around it
//! names the file.

/// Category prefixes that say which library layer passed the error on, not
/// what went wrong.
const LAYERS: &[&str] = &[
    "Arrow error: ",
    "Parser error: ",
    "Parquet argument error: ",
    "Parquet error: ",
    "Object Store error: ",
    "Generic LocalFileSystem error: ",
    "External error: ",
    "External: ",
    "Csv error: ",
    "Json error: ",
    "Io error: ",
    "IO error: ",
];

/// `text` without library layer prefixes (at its start or after a `: `) and
/// without ` (os error N)`.
pub fn clean(text: &str) -> String {
    let mut out = text.to_string();
    loop {
        let before = out.clone();
        for layer in LAYERS {
            if let Some(rest) = out.strip_prefix(layer) {
                out = rest.to_string();
            }
            out = out.replace(&format!(": {layer}"), ": ");
        }
        if out == before {
            break;
        }
    }
    // ` (os error 13)` and the like.
    while let Some(at) = out.find(" (os error ") {
        match out[at..].find(')') {
            Some(end) => out.replace_range(at..at + end + 1, ""),
            None => break,
        }
    }
    out
}

/// An I/O error as a short lowercase-initial text ("permission denied",
/// "file too large"), without the OS error number.
pub fn io(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        std::io::ErrorKind::NotFound => "no such file or folder".into(),
        _ => clean(&e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_layers_and_os_numbers() {
        assert_eq!(
            clean(
                "cannot read `a.parquet`: Parquet error: Parquet error: Invalid Parquet file. Corrupt footer"
            ),
            "cannot read `a.parquet`: Invalid Parquet file. Corrupt footer"
        );
        assert_eq!(
            clean(
                "Object Store error: Generic LocalFileSystem error: Unable to open file /x: Permission denied (os error 13)"
            ),
            "Unable to open file /x: Permission denied"
        );
        assert_eq!(
            clean("Csv error: File too large (os error 27)"),
            "File too large"
        );
        assert_eq!(
            clean("Arrow error: Parquet argument error: Parquet error: bad"),
            "bad"
        );
        // Words that merely contain a prefix stay.
        assert_eq!(
            clean("take 2 of the External: rows"),
            "take 2 of the External: rows"
        );
    }
}
