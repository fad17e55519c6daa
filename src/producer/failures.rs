//! The undelivered file: rejected and undelivered rows, written as they fail (so memory stays
//! bounded however many fail), under the input's header, so the file can be fed back to
//! `produce` as it is. Created on the first failing row only.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::pack::Row;

#[derive(Debug, thiserror::Error)]
#[error("writing undelivered rows to {path}")]
pub struct SinkError {
    pub path: String,
    #[source]
    pub source: csv::Error,
}

#[derive(Default)]
struct State {
    writer: Option<csv::Writer<File>>,
    error: Option<csv::Error>,
    rows: u64,
}

pub struct FailureSink {
    path: PathBuf,
    headers: csv::ByteRecord,
    state: Mutex<State>,
}

impl FailureSink {
    pub fn new(path: PathBuf, headers: csv::ByteRecord) -> FailureSink {
        FailureSink { path, headers, state: Mutex::new(State::default()) }
    }

    /// Appends rows. A write error is kept and returned by `finish`; the rows still count.
    pub fn write(&self, rows: &[Row]) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.rows += rows.len() as u64;
        if st.error.is_some() || rows.is_empty() {
            return;
        }
        if st.writer.is_none() {
            let opened = csv::WriterBuilder::new().flexible(true).from_path(&self.path).and_then(|mut w| {
                w.write_byte_record(&self.headers)?;
                Ok(w)
            });
            match opened {
                Ok(w) => st.writer = Some(w),
                Err(e) => {
                    st.error = Some(e);
                    return;
                }
            }
        }
        let st = &mut *st;
        let w = st.writer.as_mut().expect("opened above");
        for r in rows {
            if let Err(e) = w.write_byte_record(&r.raw) {
                st.error = Some(e);
                return;
            }
        }
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).rows
    }

    /// Flushes; the file's path if any row was written.
    pub fn finish(&self) -> Result<Option<PathBuf>, SinkError> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let err = |source| SinkError { path: self.path.display().to_string(), source };
        if let Some(e) = st.error.take() {
            return Err(err(e));
        }
        match st.writer.as_mut() {
            Some(w) => {
                w.flush().map_err(|e| err(e.into()))?;
                Ok(Some(self.path.clone()))
            }
            None => Ok(None),
        }
    }
}

/// `<csv>.undelivered.csv`, beside the input.
pub fn undelivered_path(csv: &Path) -> PathBuf {
    let mut s = csv.as_os_str().to_owned();
    s.push(".undelivered.csv");
    PathBuf::from(s)
}

/// Whether two paths name the same file (the second may not exist yet).
pub fn same_file(a: &Path, b: &Path) -> bool {
    let canon = |p: &Path| {
        p.canonicalize().ok().or_else(|| {
            let parent = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            Some(parent.canonicalize().ok()?.join(p.file_name()?))
        })
    };
    match (canon(a), canon(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_header_then_rows_and_only_when_needed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("left.csv");
        let sink = FailureSink::new(path.clone(), csv::ByteRecord::from(vec!["a", "b"]));
        assert_eq!(sink.finish().unwrap(), None);
        assert!(!path.exists());
        sink.write(&[Row { row: 3, raw: csv::ByteRecord::from(vec!["1", "x,y"]) }]);
        sink.write(&[Row { row: 9, raw: csv::ByteRecord::from(vec!["2", "z"]) }]);
        assert_eq!(sink.finish().unwrap(), Some(path.clone()));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a,b\n1,\"x,y\"\n2,z\n");
        assert_eq!(sink.rows(), 2);
    }

    #[test]
    fn same_file_sees_through_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("in.csv");
        std::fs::write(&f, "x").unwrap();
        assert!(same_file(&f, &dir.path().join(".").join("in.csv")));
        assert!(!same_file(&f, &dir.path().join("out.csv")));
        assert_eq!(undelivered_path(Path::new("/x/rows.csv")), PathBuf::from("/x/rows.csv.undelivered.csv"));
    }
}
