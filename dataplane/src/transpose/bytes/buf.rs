//! The frame buffer rewrites work in: headroom in front, so pushing headers (VXLAN, a
//! VLAN tag) moves the start instead of the frame.

/// Headroom for a VXLAN encapsulation over IPv6 (14 + 40 + 8 + 8 = 70) plus a VLAN tag,
/// rounded up: what [`PacketBuf::with_headroom`] callers should reserve.
pub const DEFAULT_HEADROOM: usize = 96;

/// A frame with headroom in front of it, so that pushing headers (VXLAN, a VLAN tag)
/// moves the start instead of the frame. Stripping headers gives the room back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketBuf {
    pub(super) buf: Vec<u8>,
    start: usize,
}

// The invariant `start <= buf.len()` holds after every method (each moves `start` only
// within the buffer), so the ranges below, all within `start..buf.len()`, are in bounds.
#[allow(clippy::indexing_slicing)]
impl PacketBuf {
    /// A copy of `frame` with `headroom` free bytes before it.
    pub fn with_headroom(frame: &[u8], headroom: usize) -> PacketBuf {
        let mut buf = Vec::with_capacity(headroom + frame.len());
        buf.resize(headroom, 0);
        buf.extend_from_slice(frame);
        PacketBuf {
            buf,
            start: headroom,
        }
    }

    /// Reloads the buffer with `frame` behind `headroom` bytes, reusing its memory: a
    /// packet loop keeps one buffer and allocates only when a frame is larger than any
    /// before it.
    pub fn load(&mut self, frame: &[u8], headroom: usize) {
        self.buf.clear();
        self.buf.resize(headroom, 0);
        self.buf.extend_from_slice(frame);
        self.start = headroom;
    }

    /// The frame in `v`, without headroom (the first push will make some).
    pub fn from_vec(v: Vec<u8>) -> PacketBuf {
        PacketBuf { buf: v, start: 0 }
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..]
    }

    pub fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Free bytes in front of the frame.
    pub fn headroom(&self) -> usize {
        self.start
    }

    /// The frame, without its headroom.
    pub fn into_vec(mut self) -> Vec<u8> {
        self.buf.drain(..self.start);
        self.buf
    }

    /// Makes `n` new bytes in front of the frame and returns them (their content is
    /// unspecified). Uses the headroom; grows the buffer only when it is exhausted.
    pub fn prepend(&mut self, n: usize) -> &mut [u8] {
        if n > self.start {
            // Slow path: one move of the frame, with room for the next push too.
            let add = (n - self.start).max(DEFAULT_HEADROOM);
            self.buf.splice(0..0, std::iter::repeat_n(0u8, add));
            self.start += add;
        }
        self.start -= n;
        &mut self.buf[self.start..self.start + n]
    }

    /// Drops the first `n` bytes (at most the whole frame); they become headroom.
    pub fn strip_front(&mut self, n: usize) {
        self.start += n.min(self.len());
    }

    /// Keeps the first `len` bytes.
    pub fn truncate(&mut self, len: usize) {
        if len < self.len() {
            self.buf.truncate(self.start + len);
        }
    }

    /// Opens `n` bytes at `at` (clamped to the length) and returns them: the first `at`
    /// bytes move into the headroom, which for a VLAN tag after the MACs is 12 bytes.
    pub fn insert(&mut self, at: usize, n: usize) -> &mut [u8] {
        let at = at.min(self.len());
        self.prepend(n);
        let s = self.start;
        self.buf.copy_within(s + n..s + n + at, s);
        &mut self.buf[s + at..s + at + n]
    }

    /// Removes `n` bytes at `at` (clamped to the frame) by moving the first `at` bytes
    /// forward over them.
    pub fn remove(&mut self, at: usize, n: usize) {
        let len = self.len();
        if at >= len {
            return;
        }
        let n = n.min(len - at);
        let s = self.start;
        self.buf.copy_within(s..s + at, s + n);
        self.start += n;
    }
}
