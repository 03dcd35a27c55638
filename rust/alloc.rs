//! Fallible allocation for every buffer whose size comes from the user (a layout, a model
//! file, a batch): a refused allocation is an `ErrorKind::Memory` error naming the buffer
//! and the bytes it needs, a size no allocation can hold (overflow, past isize::MAX) an
//! `ErrorKind::Value` error; never Rust's abort on allocation failure.

use crate::error::{Error, Result};

/// "37.3 GiB": bytes in binary units, for messages.
pub fn human(bytes: usize) -> String {
    const UNITS: [&str; 7] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let (mut v, mut u) = (bytes as f64, 0);
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The product of `dims`, or a ValueError when it overflows.
pub fn size(dims: &[usize], what: impl Fn() -> String) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| Error::new(format!("{}: {} values overflow the address space", what(), dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(" × "))))
}

/// Bytes of `len` values of T, or a ValueError when no allocation could hold them.
pub fn bytes<T>(len: usize, what: impl Fn() -> String) -> Result<usize> {
    len.checked_mul(std::mem::size_of::<T>())
        .filter(|&b| b <= isize::MAX as usize)
        .ok_or_else(|| Error::new(format!("{}: {len} values of {} bytes are more than any allocation can hold", what(), std::mem::size_of::<T>())))
}

fn refused(what: &str, bytes: usize) -> Error {
    Error::memory(format!("{what} needs {bytes} bytes ({}); not enough memory", human(bytes)))
}

/// Grow `v` to `len` values (new ones `fill`); never shrinks.
pub fn grow<T: Clone>(v: &mut Vec<T>, len: usize, fill: T, what: impl Fn() -> String) -> Result<()> {
    if v.len() >= len {
        return Ok(());
    }
    let b = bytes::<T>(len, &what)?;
    v.try_reserve_exact(len - v.len()).map_err(|_| refused(&what(), b))?;
    v.resize(len, fill);
    Ok(())
}

/// `len` copies of `fill`.
pub fn filled<T: Clone>(len: usize, fill: T, what: impl Fn() -> String) -> Result<Vec<T>> {
    let mut v = Vec::new();
    grow(&mut v, len, fill, what)?;
    Ok(v)
}

/// `len` zeros.
pub fn zeros<T: Clone + num_traits::Zero>(len: usize, what: impl Fn() -> String) -> Result<Vec<T>> {
    filled(len, T::zero(), what)
}

/// A copy of `s`.
pub fn copy<T: Clone>(s: &[T], what: impl Fn() -> String) -> Result<Vec<T>> {
    let mut v = Vec::new();
    let b = bytes::<T>(s.len(), &what)?;
    v.try_reserve_exact(s.len()).map_err(|_| refused(&what(), b))?;
    v.extend_from_slice(s);
    Ok(v)
}

/// Copies of a list of tensors (parameters, state, gradients handed out).
pub fn copies<T: Clone>(list: &[Vec<T>], what: &str) -> Result<Vec<Vec<T>>> {
    list.iter().enumerate().map(|(i, s)| copy(s, || format!("{what}[{i}]"))).collect()
}

/// `buf[..len]`, grown to hold it, for buffers grown in the middle of a computation
/// (per-thread scratch, kernel workspaces), where no `Result` can be returned: a refused
/// allocation unwinds with the `Error` as payload, without the panic hook's message; the
/// Python bindings catch it and raise MemoryError.
pub fn grown<T: Clone + num_traits::Zero>(buf: &mut Vec<T>, len: usize, what: impl Fn() -> String) -> &mut [T] {
    if let Err(e) = grow(buf, len, T::zero(), what) {
        std::panic::resume_unwind(Box::new(e));
    }
    &mut buf[..len]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn sizes_beyond_memory_are_errors_not_aborts() {
        let v: Vec<f32> = zeros(5, || "t".into()).unwrap();
        assert_eq!(v, [0.0; 5]);
        assert_eq!(human(40_000_000_000), "37.3 GiB");
        assert_eq!(human(512), "512 bytes");
        // past isize::MAX: a ValueError; overflow of the shape likewise
        let e = zeros::<f64>(usize::MAX / 4, || "layer 0 (dense 'd0'): weight".into()).unwrap_err();
        assert_eq!(e.1, ErrorKind::Value, "{e}");
        assert!(e.0.starts_with("layer 0 (dense 'd0'): weight"), "{e}");
        let e = size(&[1 << 40, 1 << 40], || "input".into()).unwrap_err();
        assert_eq!(e.1, ErrorKind::Value, "{e}");
        // a size the allocator refuses (2^62 bytes: no machine has that): MemoryError
        let e = zeros::<f32>(1 << 60, || "layer 3 (conv 'c3'): weight".into()).unwrap_err();
        assert_eq!(e.1, ErrorKind::Memory, "{e}");
        assert_eq!(e.0, format!("layer 3 (conv 'c3'): weight needs {} bytes (4.0 EiB); not enough memory", 1usize << 62));
        // growth keeps the values, and never shrinks
        let mut g = vec![1u8, 2];
        grow(&mut g, 4, 9, || "g".into()).unwrap();
        grow(&mut g, 1, 0, || "g".into()).unwrap();
        assert_eq!(g, [1, 2, 9, 9]);
        assert!(grow(&mut g, 1 << 62, 0, || "g".into()).is_err());
        assert_eq!(g, [1, 2, 9, 9]);
        // in the middle of a computation: an unwind carrying the error
        let p = std::panic::catch_unwind(|| {
            let mut b: Vec<f64> = Vec::new();
            // black_box: the optimiser may not elide an allocation whose memory is unused
            std::hint::black_box(grown(&mut b, 1 << 58, || "scratch".into()).as_ptr())
        })
        .unwrap_err();
        assert_eq!(p.downcast_ref::<Error>().map(|e| e.1), Some(ErrorKind::Memory));
    }
}
