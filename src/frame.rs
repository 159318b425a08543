//! The byte framing of a message between processes: the JSON head's length (u64,
//! little-endian), the JSON head, then raw bytes (ciphertexts, keys) that the head describes.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A frame that does not parse.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("shorter than its length prefix")]
    NoPrefix,
    #[error("shorter than its head")]
    Short,
    #[error("head: {0}")]
    Head(serde_json::Error),
}

/// `head` as JSON behind its length, then every piece of `tail` in order.
pub fn write<T: Serialize>(head: &T, tail: &[&[u8]]) -> Result<Vec<u8>, serde_json::Error> {
    let head = serde_json::to_vec(head)?;
    let mut out = (head.len() as u64).to_le_bytes().to_vec();
    out.reserve(head.len() + tail.iter().map(|t| t.len()).sum::<usize>());
    out.extend(head);
    for t in tail {
        out.extend(*t);
    }
    Ok(out)
}

/// The head of a frame written by [`write`], and the bytes after it.
pub fn read<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, &[u8]), FrameError> {
    let (len, rest) = bytes.split_first_chunk::<8>().ok_or(FrameError::NoPrefix)?;
    let len = usize::try_from(u64::from_le_bytes(*len)).map_err(|_| FrameError::Short)?;
    if rest.len() < len {
        return Err(FrameError::Short);
    }
    let (head, tail) = rest.split_at(len);
    Ok((
        serde_json::from_slice(head).map_err(FrameError::Head)?,
        tail,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_reads_back_and_damage_is_refused() {
        let bytes = write(&vec![1u32, 2], &[b"ab", b"c"]).unwrap();
        let (head, tail): (Vec<u32>, _) = read(&bytes).unwrap();
        assert_eq!((head, tail), (vec![1, 2], &b"abc"[..]));
        assert!(matches!(
            read::<Vec<u32>>(&bytes[..5]),
            Err(FrameError::NoPrefix)
        ));
        assert!(matches!(
            read::<Vec<u32>>(&bytes[..10]),
            Err(FrameError::Short)
        ));
        let mut bad = bytes.clone();
        bad[8] = b'x';
        assert!(matches!(read::<Vec<u32>>(&bad), Err(FrameError::Head(_))));
    }
}
