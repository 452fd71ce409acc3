//! A service's stdout and stderr, in a size-capped, rotated file.
//!
//! Each line gets a timestamp and its stream, so a report can show the lines
//! around an incident. No file ever exceeds `max_size`: a write that would
//! cross the cap is split and the file rotated in between, so a service that
//! floods its output (some do when out of fds) costs at most
//! `max_size × (keep + 1)` of disk.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Out,
    Err,
    /// Lines soak itself writes (incarnation started, exited).
    Soak,
}

impl Stream {
    fn tag(self) -> &'static str {
        match self {
            Stream::Out => "out",
            Stream::Err => "err",
            Stream::Soak => "soak",
        }
    }
}

pub struct LogFile {
    path: PathBuf,
    max_size: u64,
    keep: u32,
    file: File,
    size: u64,
    /// Per stream: is the next byte the start of a line?
    line_start: [bool; 3],
    /// Bytes the service wrote, rotated or not (for log-rate verdicts).
    pub written: u64,
}

impl LogFile {
    pub fn open(path: &Path, max_size: u64, keep: u32) -> io::Result<LogFile> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(LogFile {
            path: path.to_path_buf(),
            // A cap below one prefixed line would rotate forever.
            max_size: max_size.max(256),
            keep,
            file,
            size,
            line_start: [true; 3],
            written: 0,
        })
    }

    fn rotated(&self, n: u32) -> PathBuf {
        let mut s = self.path.clone().into_os_string();
        s.push(format!(".{n}"));
        PathBuf::from(s)
    }

    fn rotate(&mut self) -> io::Result<()> {
        if self.keep == 0 {
            self.file.set_len(0)?;
        } else {
            let _ = fs::remove_file(self.rotated(self.keep));
            for n in (1..self.keep).rev() {
                let _ = fs::rename(self.rotated(n), self.rotated(n + 1));
            }
            fs::rename(&self.path, self.rotated(1))?;
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
        }
        self.size = 0;
        Ok(())
    }

    /// Writes `bytes` within the cap.
    fn put(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            if self.size >= self.max_size {
                self.rotate()?;
            }
            let room = (self.max_size - self.size) as usize;
            let n = room.min(bytes.len());
            self.file.write_all(&bytes[..n])?;
            self.size += n as u64;
            bytes = &bytes[n..];
        }
        Ok(())
    }

    /// Appends output of `stream` at wall-clock `ts_ms`, prefixing each new line.
    pub fn write(&mut self, stream: Stream, ts_ms: i64, data: &[u8]) -> io::Result<()> {
        if stream != Stream::Soak {
            self.written += data.len() as u64;
        }
        let idx = stream as usize;
        let prefix = format!("{} {} ", crate::clock::rfc3339_ms(ts_ms), stream.tag());
        let mut out = Vec::with_capacity(data.len() + 64);
        for piece in data.split_inclusive(|b| *b == b'\n') {
            if self.line_start[idx] {
                out.extend_from_slice(prefix.as_bytes());
            }
            out.extend_from_slice(piece);
            self.line_start[idx] = piece.ends_with(b"\n");
        }
        self.put(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_never_exceeds_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("svc.log");
        let mut log = LogFile::open(&path, 4096, 2).unwrap();
        let line = [b'x'; 100];
        for _ in 0..1000 {
            log.write(Stream::Out, 0, &line).unwrap();
            log.write(Stream::Out, 0, b"\n").unwrap();
        }
        let total: u64 = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .inspect(|len| assert!(*len <= 4096))
            .sum();
        assert!(total <= 3 * 4096, "total {total}");
        assert!(path.with_extension("log.2").exists());
        assert!(!path.with_extension("log.3").exists());
    }

    #[test]
    fn lines_split_across_writes_get_one_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("svc.log");
        let mut log = LogFile::open(&path, 1 << 20, 1).unwrap();
        log.write(Stream::Err, 0, b"hel").unwrap();
        log.write(Stream::Err, 0, b"lo\nworld\n").unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "1970-01-01T00:00:00.000Z err hello\n1970-01-01T00:00:00.000Z err world\n"
        );
    }
}
