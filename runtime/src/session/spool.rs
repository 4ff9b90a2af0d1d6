//! The client's offline material on disk: garbled tables and OT-delivered labels are written
//! in the order the online phase reads them, to an unlinked temporary file, so a model's
//! material never has to fit in memory. Read back once, front to back.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// A write-once, read-once sequential spool.
pub struct Spool {
    w: Option<BufWriter<File>>,
    r: Option<BufReader<File>>,
    written: u64,
    read: u64,
}

impl Spool {
    /// A spool in `dir` (the system temporary directory by default). The file has no name on
    /// disk and disappears with the spool.
    pub fn new(dir: Option<&Path>) -> std::io::Result<Spool> {
        let f = match dir {
            Some(d) => tempfile::tempfile_in(d)?,
            None => tempfile::tempfile()?,
        };
        Ok(Spool {
            w: Some(BufWriter::with_capacity(1 << 20, f)),
            r: None,
            written: 0,
            read: 0,
        })
    }

    /// Appends bytes (before the first read only).
    pub fn write(&mut self, b: &[u8]) -> std::io::Result<()> {
        let w = self
            .w
            .as_mut()
            .ok_or_else(|| std::io::Error::other("spool already being read"))?;
        w.write_all(b)?;
        self.written += b.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.written
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.written == 0
    }

    /// Reads the next `n` bytes (switching from writing to reading on first use).
    pub fn read(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        if let Some(w) = self.w.take() {
            let mut f = w.into_inner().map_err(|e| e.into_error())?;
            f.seek(SeekFrom::Start(0))?;
            self.r = Some(BufReader::with_capacity(1 << 20, f));
        }
        if self.read + n as u64 > self.written {
            return Err(std::io::Error::other(
                "offline material exhausted: the online phase asked for more than was prepared",
            ));
        }
        let mut out = vec![0u8; n];
        self.r
            .as_mut()
            .expect("reader set above")
            .read_exact(&mut out)?;
        self.read += n as u64;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_in_order_once() {
        let mut s = Spool::new(None).unwrap();
        s.write(b"abc").unwrap();
        s.write(&[7u8; 5000]).unwrap();
        assert_eq!(s.len(), 5003);
        assert_eq!(s.read(2).unwrap(), b"ab");
        assert_eq!(s.read(5001).unwrap()[1..], [7u8; 5000][..]);
        assert!(s.read(1).is_err(), "nothing is read twice");
        assert!(s.write(b"x").is_err(), "no writes after reading");
    }
}
