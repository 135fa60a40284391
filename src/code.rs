//! Code derivation and checking.
//!
//! A code is never stored. It is recomputed whenever it is needed as the
//! digits of an HMAC-SHA256 under the validation's key, over a message that
//! binds every field. Two message layouts exist, named by [`Derivation`]
//! (the record keeps which one made its code):
//!
//! ```text
//! V1: "otpflow.code.v1" ‖ len ‖ purpose ‖ len ‖ E.164 ‖ nonce ‖ generation ‖ block
//! V2: "of2" ‖ nonce ‖ generation ‖ block ‖ E.164 digits as 8 BCD bytes ‖ len ‖ purpose
//! V2Bound: "ofc" ‖ SHA-256(nonce ‖ context digest)[..16] ‖ (the rest as V2)
//! ```
//!
//! V2Bound is V2 for a subject bound to a [`Context`](crate::Context) (see
//! [`otpflow::context`](crate::context)): one more compression, when the
//! bound nonce is computed.
//!
//! For a subject with a tenant, `purpose` is `tenant/purpose` (labels hold
//! no `/`), so a code is bound to its tenant and a subject without one
//! derives as it always did.
//!
//! Both are injective: every variable-length field is length-prefixed (V2
//! puts its only one last, after fixed-width fields; E.164 has at most 15
//! digits, packed two per byte and padded with `0xF` nibbles). A V2 message
//! is at most 55 bytes for purposes of up to 22 bytes (`login` and
//! `onboarding` included), so it fits the single block after HMAC's inner
//! pad: from the key's precomputed midstates a code costs two SHA-256
//! compressions. V1 messages take three.
//!
//! The MAC output is read as a stream of bytes; a byte of 250 or more is
//! skipped (rejection sampling) and the others give `byte % 10`, so every
//! digit is uniform — no modulo bias. Should one block run out (probability
//! below 10⁻²⁵ for ten digits), the next block counter gives 32 more bytes.
//!
//! Key-equivalent material stays off the stack: the midstates live in the
//! key's zeroized heap block, the working buffers here are zeroized, and
//! the stack area the compressions used is overwritten before a derivation
//! returns (see `tests/stack_residue.rs`).
//!
//! A check parses the user's input first (spaces and dashes ignored; any
//! other character or a wrong length is a malformed code that spends no
//! attempt), then compares all digits in constant time with
//! [`subtle::ConstantTimeEq`]. The length is not secret: it is the policy's.

use core::fmt;
use core::hint::black_box;
use core::ops::Deref;

use sha2::block_api::compress256;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::keys::{MacStates, SecretKey};
use crate::subject::{Purpose, SubjectKey};

/// Bytes of the random nonce each validation draws.
pub const NONCE_LEN: usize = 16;
/// The most digits a code can have.
pub const MAX_CODE_LEN: usize = 10;
/// The longest code input looked at, in bytes; anything longer is malformed.
pub const MAX_CODE_INPUT_LEN: usize = 64;

const DOMAIN_V1: &[u8] = b"otpflow.code.v1";
/// V2's tag, for a canonical E.164 number (`+` and 1 to 16 digits).
const TAG_V2: &[u8; 3] = b"of2";
/// V2's tag for any other phone text (none exists: `PhoneNumber` is always
/// canonical), which is then length-prefixed as in V1. It keeps the
/// derivation total and injective without trusting that invariant.
const TAG_V2_RAW: &[u8; 3] = b"of~";
/// V2Bound's tags, for a canonical E.164 number and for any other text.
const TAG_V2_BOUND: &[u8; 3] = b"ofc";
const TAG_V2_BOUND_RAW: &[u8; 3] = b"oc~";
/// Bytes of the stack below a derivation's caller that are overwritten
/// after it when SHA-256 runs on the CPU's SHA extensions: twice what the
/// derivation and the compression use, as measured by
/// `tests/stack_residue.rs` (at most 512 optimized, 2048 unoptimized).
const SCRUB_BYTES: usize = if cfg!(debug_assertions) { 4096 } else { 1024 };
/// The same when SHA-256 runs in software (`sha2`'s unrolled rounds spill
/// more): the test finds the outer midstate left at 1,024 bytes optimized
/// and none at 2,048, so twice that. Also for any other backend.
const SCRUB_BYTES_SOFT: usize = 4096;
/// Bytes at or above this are rejected: 250 is the largest multiple of 10
/// that fits in a byte.
const REJECT_FROM: u8 = 250;

/// A one-time code, to hand to the message sender. It is zeroized on drop and
/// its `Debug` is redacted; [`as_str`](Self::as_str) is the only way to read
/// it, so it is not logged by accident.
///
/// ```
/// # use otpflow::Code;
/// # fn show(code: &Code) {
/// let text = format!("Your code is {}", code.as_str());
/// assert!(!format!("{code:?}").contains(code.as_str()));
/// # }
/// ```
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Code {
    digits: [u8; MAX_CODE_LEN],
    len: u8,
}

impl Code {
    /// The code's digits, e.g. `"042917"`.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits are ever written into `digits`.
        core::str::from_utf8(&self.digits[..usize::from(self.len)]).unwrap_or_default()
    }

    /// Number of digits.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Always false: a code has 4 to 10 digits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A code given by configuration (a test number's fixed code): its
    /// ASCII digits, at most [`MAX_CODE_LEN`] of them (the policy checked).
    pub(crate) fn fixed(digits: &str) -> Self {
        let mut code = Self {
            digits: [0; MAX_CODE_LEN],
            len: 0,
        };
        for (slot, b) in code.digits.iter_mut().zip(digits.bytes()) {
            *slot = b;
            code.len += 1;
        }
        code
    }

    /// Compares with parsed user input in constant time. Both hold zeros
    /// past their length (every constructor writes only `len` digits into
    /// a zeroed array), so the whole arrays compare as two words; the
    /// length is not secret (it is the policy's).
    pub(crate) fn matches(&self, input: &CodeInput) -> bool {
        self.len == input.len && words_eq(&self.digits, &input.digits)
    }
}

/// Constant-time, like every comparison of codes here.
impl PartialEq for Code {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && words_eq(&self.digits, &other.digits)
    }
}

/// Compares ten digit bytes in constant time as one `u64` and one `u16`
/// (two steps instead of ten).
fn words_eq(a: &[u8; MAX_CODE_LEN], b: &[u8; MAX_CODE_LEN]) -> bool {
    let words = |d: &[u8; MAX_CODE_LEN]| {
        let (low, high) = d.split_first_chunk::<8>().unwrap_or((&[0; 8], &[]));
        let high = high.first_chunk::<2>().unwrap_or(&[0; 2]);
        (u64::from_le_bytes(*low), u16::from_le_bytes(*high))
    };
    let ((a_lo, a_hi), (b_lo, b_hi)) = (words(a), words(b));
    bool::from(a_lo.ct_eq(&b_lo) & a_hi.ct_eq(&b_hi))
}

impl Eq for Code {}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Code(<{} digits redacted>)", self.len)
    }
}

/// What a user typed, reduced to its digits.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct CodeInput {
    digits: [u8; MAX_CODE_LEN],
    len: u8,
}

/// The user's input is not a code of the expected length. Spends no attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MalformedCode;

impl CodeInput {
    /// Keeps the ASCII digits, skips spaces and dashes, refuses anything else
    /// and any count of digits other than `length`.
    pub(crate) fn parse(input: &str, length: u8) -> Result<Self, MalformedCode> {
        if input.len() > MAX_CODE_INPUT_LEN {
            return Err(MalformedCode);
        }
        let want = usize::from(length).min(MAX_CODE_LEN);
        let mut out = Self {
            digits: [0; MAX_CODE_LEN],
            len: 0,
        };
        let mut n = 0usize;
        for b in input.bytes() {
            match b {
                b'0'..=b'9' => {
                    let slot = out
                        .digits
                        .get_mut(n)
                        .filter(|_| n < want)
                        .ok_or(MalformedCode)?;
                    *slot = b;
                    n += 1;
                }
                b' ' | b'-' => {}
                _ => return Err(MalformedCode),
            }
        }
        if n != want {
            return Err(MalformedCode);
        }
        out.len = length;
        Ok(out)
    }
}

/// Which message layout derived a code (see the [module](self)
/// documentation). A record keeps it, so codes issued before an upgrade
/// still check.
///
/// ```
/// use otpflow::code::Derivation;
/// assert_eq!(Derivation::from_u8(1), Some(Derivation::V1));
/// assert_eq!(Derivation::LATEST.to_u8(), 2);
/// assert_eq!(Derivation::from_u8(0), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Derivation {
    /// `"otpflow.code.v1"` and length-prefixed fields: three compressions.
    V1,
    /// A 3-byte tag and fixed-width fields: two compressions.
    V2,
    /// V2 bound to the subject's [`Context`](crate::Context): its own tag,
    /// and the nonce field mixed with the context's digest (one compression
    /// more).
    V2Bound,
}

impl Derivation {
    /// What new validations use.
    pub const LATEST: Self = Self::V2;

    /// The version number a record stores.
    pub fn to_u8(self) -> u8 {
        match self {
            Self::V1 => 1,
            Self::V2 => 2,
            Self::V2Bound => 3,
        }
    }

    /// The derivation a record's version number names, if it is known.
    pub fn from_u8(version: u8) -> Option<Self> {
        match version {
            1 => Some(Self::V1),
            2 => Some(Self::V2),
            3 => Some(Self::V2Bound),
            _ => None,
        }
    }

    /// The code of one validation: what the [`Engine`](crate::Engine)
    /// derives for `subject` from the validation's `nonce` and its
    /// `generation` in the subject's record, `length` digits (4 to 10).
    /// For interoperability checks and benches; the engine calls it itself.
    ///
    /// ```
    /// use otpflow::code::Derivation;
    /// use otpflow::*;
    /// let key = SecretKey::new(KeyId(1), &[42u8; 32])?;
    /// let phone = PhoneNumber::parse("+447401101801", &PhonePolicy::default())?;
    /// let subject = SubjectKey::new(Purpose::Login, phone);
    /// let code = Derivation::V2.derive(&key, &subject, &[0; 16], 1, 6);
    /// assert_eq!(code.len(), 6);
    /// assert_eq!(code, Derivation::V2.derive(&key, &subject, &[0; 16], 1, 6));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn derive(
        self,
        key: &SecretKey,
        subject: &SubjectKey,
        nonce: &[u8; NONCE_LEN],
        generation: u32,
        length: u8,
    ) -> Code {
        derive_with(self, key, subject, nonce, generation, length.clamp(4, 10))
    }
}

/// Derives the code of a stored validation with the derivation its record
/// names (`version`); a version this build does not know (which `verify`
/// refuses before deriving) falls back to the latest.
pub(crate) fn derive_recorded<K: Deref<Target = SecretKey>>(
    version: u8,
    key: K,
    subject: &SubjectKey,
    nonce: &[u8; NONCE_LEN],
    generation: u32,
    length: u8,
) -> Code {
    let derivation = Derivation::from_u8(version).unwrap_or(Derivation::LATEST);
    derive_with(derivation, &key, subject, nonce, generation, length)
}

/// Derives the code of one validation with `derivation`, then scrubs the
/// stack the derivation used.
pub(crate) fn derive_with(
    derivation: Derivation,
    key: &SecretKey,
    subject: &SubjectKey,
    nonce: &[u8; NONCE_LEN],
    generation: u32,
    length: u8,
) -> Code {
    let code = derive_digits(derivation, key.states(), subject, nonce, generation, length);
    scrub_stack();
    code
}

#[inline(never)]
fn derive_digits(
    derivation: Derivation,
    states: &MacStates,
    subject: &SubjectKey,
    nonce: &[u8; NONCE_LEN],
    generation: u32,
    length: u8,
) -> Code {
    let want = usize::from(length).min(MAX_CODE_LEN);
    let mut code = Code {
        digits: [0; MAX_CODE_LEN],
        len: 0,
    };
    // The purpose, or `tenant/purpose` for a subject with a tenant: the
    // tenant is bound in the field both layouts already length-prefix.
    // Without a tenant the purpose is borrowed as it is: no copy.
    let scoped;
    let purpose = match subject.tenant() {
        None => subject.purpose().as_str().as_bytes(),
        Some(_) => {
            scoped = subject.scoped_purpose();
            scoped.as_bytes()
        }
    };
    let phone = subject.phone().e164_bytes();
    let bcd = match derivation {
        Derivation::V1 => None,
        Derivation::V2 | Derivation::V2Bound => packed_phone(subject.phone()),
    };
    // V2Bound is V2 with its own tags and the context mixed into the nonce.
    let bound;
    let (tag, raw_tag, nonce) = match derivation {
        Derivation::V2Bound => {
            bound = crate::context::bound_nonce(nonce, subject.context());
            (TAG_V2_BOUND, TAG_V2_BOUND_RAW, &bound)
        }
        _ => (TAG_V2, TAG_V2_RAW, nonce),
    };
    if let Some(packed) = &bcd
        && let Some(tail) = v2_tail_for(subject, purpose)
    {
        let head = V2Head {
            tag,
            nonce,
            generation,
            bcd: packed,
        };
        let mut state = v2_one_block(states, &head.block(0, &tail));
        // Usually the first eight bytes of the MAC give the digits.
        if let Some(digits) = first_digits(&state, want) {
            code.digits = digits;
            code.len = length;
            return code;
        }
        let mut n = 0usize;
        let mut block: u8 = 0;
        loop {
            let mut out = [0u8; 32];
            for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
                chunk.copy_from_slice(&word.to_be_bytes());
            }
            take_digits(&mut code, &mut n, want, &out);
            if n >= want {
                break;
            }
            block = block.wrapping_add(1);
            state = v2_one_block(states, &head.block(block, &tail));
        }
        code.len = length;
        return code;
    }
    let mut n = 0usize;
    let mut block: u8 = 0;
    while n < want {
        let mut mac = Mac::new(states);
        match derivation {
            Derivation::V1 => {
                mac.update(DOMAIN_V1);
                mac.update(&[len_byte(purpose)]);
                mac.update(purpose);
                mac.update(&[len_byte(phone)]);
                mac.update(phone);
                mac.update(nonce);
                mac.update(&generation.to_be_bytes());
                mac.update(&[block]);
            }
            Derivation::V2 | Derivation::V2Bound => {
                mac.update(if bcd.is_some() { tag } else { raw_tag });
                mac.update(nonce);
                mac.update(&generation.to_be_bytes());
                mac.update(&[block]);
                match &bcd {
                    Some(packed) => mac.update(packed),
                    None => {
                        mac.update(&[len_byte(phone)]);
                        mac.update(phone);
                    }
                }
                mac.update(&[len_byte(purpose)]);
                mac.update(purpose);
            }
        }
        let mut out = mac.finish(&states.outer);
        take_digits(&mut code, &mut n, want, &out);
        out.zeroize();
        block = block.wrapping_add(1);
    }
    code.len = length;
    code
}

/// Appends to `code` the digits the MAC bytes give, until it has `want`:
/// a byte of [`REJECT_FROM`] or more is skipped, any other gives `byte % 10`.
#[inline(always)]
fn take_digits(code: &mut Code, n: &mut usize, want: usize, bytes: &[u8]) {
    for &b in bytes {
        if *n == want {
            break;
        }
        if b < REJECT_FROM {
            code.digits[*n] = b'0' + b % 10;
            *n += 1;
        }
    }
}

/// V2's fixed-width fields: tag, nonce, generation, block, BCD digits and
/// the purpose's length byte.
const V2_FIXED: usize = 3 + NONCE_LEN + 4 + 1 + 8 + 1;
/// The longest message that fits one block with SHA-256's padding.
const ONE_BLOCK: usize = 55;
/// The longest purpose (or `tenant/purpose`) a one-block V2 message holds.
const ONE_BLOCK_PURPOSE: usize = ONE_BLOCK - V2_FIXED;
/// Where the purpose's length byte sits in a V2 block: everything before
/// it has a fixed width.
const V2_HEAD: usize = V2_FIXED - 1;

/// The second half of a one-block V2 message block: the purpose's length
/// byte, the purpose, SHA-256's `0x80` and zeros, and the message's length
/// in bits (after the 64-byte key block). The same for every code of a
/// purpose, so the built-in purposes have theirs computed at build time.
/// `purpose` is at most [`ONE_BLOCK_PURPOSE`] bytes.
const fn v2_tail(purpose: &[u8]) -> [u8; 32] {
    let mut tail = [0u8; 32];
    let len = if purpose.len() < ONE_BLOCK_PURPOSE {
        purpose.len()
    } else {
        ONE_BLOCK_PURPOSE
    };
    // At most 22: the cast keeps every bit.
    #[allow(clippy::cast_possible_truncation)]
    {
        tail[0] = len as u8;
    }
    let mut i = 0;
    while i < len {
        tail[1 + i] = purpose[i];
        i += 1;
    }
    tail[1 + len] = 0x80;
    let bits = ((64 + V2_FIXED + len) as u64 * 8).to_be_bytes();
    let mut j = 0;
    while j < 8 {
        tail[24 + j] = bits[j];
        j += 1;
    }
    tail
}

const TAIL_LOGIN: [u8; 32] = v2_tail(b"login");
const TAIL_ONBOARDING: [u8; 32] = v2_tail(b"onboarding");

/// The tail of `subject`'s one-block V2 message (`purpose` is its purpose,
/// or `tenant/purpose`), or `None` when the purpose is too long for one
/// block.
fn v2_tail_for(subject: &SubjectKey, purpose: &[u8]) -> Option<[u8; 32]> {
    if subject.tenant().is_none() {
        match subject.purpose() {
            Purpose::Login => return Some(TAIL_LOGIN),
            Purpose::Onboarding => return Some(TAIL_ONBOARDING),
            Purpose::Custom(_) => {}
        }
    }
    (purpose.len() <= ONE_BLOCK_PURPOSE).then(|| v2_tail(purpose))
}

/// The fixed-width fields of a V2 message.
struct V2Head<'a> {
    tag: &'a [u8; 3],
    nonce: &'a [u8; NONCE_LEN],
    generation: u32,
    bcd: &'a [u8; 8],
}

impl V2Head<'_> {
    /// The message block for MAC block `block`: every field at its fixed
    /// place, then `tail` (already padded): fixed-width copies only.
    fn block(&self, block: u8, tail: &[u8; 32]) -> [u8; 64] {
        let mut m = [0u8; 64];
        m[..3].copy_from_slice(self.tag);
        m[3..19].copy_from_slice(self.nonce);
        m[19..23].copy_from_slice(&self.generation.to_be_bytes());
        m[23] = block;
        m[24..V2_HEAD].copy_from_slice(self.bcd);
        m[V2_HEAD..].copy_from_slice(tail);
        m
    }
}

/// The outer hash's block after the inner hash: `0x80`, zeros, and the
/// length in bits of 64 key bytes and the 32-byte inner hash.
const OUTER_TAIL: [u8; 32] = {
    let mut tail = [0u8; 32];
    tail[0] = 0x80;
    let bits = ((64u64 + 32) * 8).to_be_bytes();
    let mut j = 0;
    while j < 8 {
        tail[24 + j] = bits[j];
        j += 1;
    }
    tail
};

/// One V2 MAC over a prepared one-block message: two compressions from
/// the key's midstates (the physical floor of HMAC-SHA256 here). The
/// buffers are left to [`scrub_stack`], which the only caller's caller
/// runs next: they live in this function's frame, inside the area it
/// overwrites (checked by `tests/stack_residue.rs`), and zeroizing each
/// with volatile writes first would cost as much as a compression.
#[inline(never)]
fn v2_one_block(states: &MacStates, message: &[u8; 64]) -> [u32; 8] {
    let mut inner = states.inner;
    compress256(&mut inner, core::slice::from_ref(message));
    // The outer hash: 64 key bytes and the 32-byte inner hash.
    let mut o = [0u8; 64];
    for (chunk, word) in o.chunks_exact_mut(4).zip(inner) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    o[32..].copy_from_slice(&OUTER_TAIL);
    let mut outer = states.outer;
    compress256(&mut outer, core::slice::from_ref(&o));
    outer
}

/// `0x01` in every byte of a word.
const ONES: u64 = u64::from_le_bytes([1; 8]);

/// The first `want` digits of a MAC whose state is `mac`, when its first
/// `want` bytes (at most 8) are all below [`REJECT_FROM`]: then they are
/// exactly what [`take_digits`] gives, computed on one word (per byte,
/// `b % 10` as `b - 10 * (b * 205 >> 11)`, exact for every byte). `None`
/// otherwise (about 13 % of six-digit codes: 1 - (250/256)^6), and the
/// caller reads the stream byte by byte. Which path runs depends on the
/// MAC, never on the input checked against it (as the byte stream's
/// rejections always did); the comparison stays constant-time.
fn first_digits(mac: &[u32; 8], want: usize) -> Option<[u8; MAX_CODE_LEN]> {
    if want > 8 {
        return None;
    }
    // The MAC's bytes 0 to 7 (big-endian words), byte i in lane i.
    let stream = ((u64::from(mac[0]) << 32) | u64::from(mac[1])).swap_bytes();
    let lanes = lane_mask(want);
    let x = stream & lanes;
    // A lane is 250 or more exactly when it has its top bit and its low
    // seven bits plus 6 carry into it (no carry leaves a lane: 127 + 6).
    let rejected = x & ((x & (0x7F * ONES)) + 0x06 * ONES) & (0x80 * ONES);
    if rejected != 0 {
        return None;
    }
    // Even and odd lanes in 16-bit lanes: b * 205 < 2^16 stays in its lane.
    let wide = 0x00FF_00FF_00FF_00FF_u64;
    let fives = 0x001F_001F_001F_001F_u64;
    let rem = |v: u64| v - (((v * 205) >> 11) & fives) * 10;
    let digits = ((rem(x & wide) | (rem((x >> 8) & wide) << 8)) + 0x30 * ONES) & lanes;
    let [d0, d1, d2, d3, d4, d5, d6, d7] = digits.to_le_bytes();
    Some([d0, d1, d2, d3, d4, d5, d6, d7, 0, 0])
}

/// A word with the low `count` bytes set (all of them from 8 on).
fn lane_mask(count: usize) -> u64 {
    match count {
        0 => 0,
        1..=7 => (1u64 << (8 * count)) - 1,
        _ => u64::MAX,
    }
}

/// The BCD digits of a phone number for V2 (see the module documentation), read
/// from its buffer with word operations; `None` when it is not canonical
/// E.164 (which a `PhoneNumber` always is).
fn packed_phone(phone: &crate::phone::PhoneNumber) -> Option<[u8; 8]> {
    let (buf, len) = phone.e164_buffer();
    if buf[0] != b'+' || !(2..=buf.len()).contains(&len) {
        return None;
    }
    let [_, a, b, c, d, e, f, g, h, i, j, k, l, m, n, o] = *buf;
    let count = len - 1;
    pack_digits(
        u64::from_le_bytes([a, b, c, d, e, f, g, h]),
        u64::from_le_bytes([i, j, k, l, m, n, o, 0]),
        count,
    )
}

/// The digits of a canonical E.164 number (`+` and 1 to 16 digits), one per
/// nibble, padded with `0xF`; `None` for anything else. What
/// [`packed_phone`] gives for a `PhoneNumber`, for any bytes (tests).
#[cfg(test)]
fn packed_digits(e164: &[u8]) -> Option<[u8; 8]> {
    let digits = e164.strip_prefix(b"+")?;
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    let mut all = [0u8; 16];
    all[..digits.len()].copy_from_slice(digits);
    let [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p] = all;
    pack_digits(
        u64::from_le_bytes([a, b, c, d, e, f, g, h]),
        u64::from_le_bytes([i, j, k, l, m, n, o, p]),
        digits.len(),
    )
}

/// `count` (1 to 16) ASCII digits, the first eight in `low`'s lanes and the
/// rest in `high`'s, packed two per byte (the first in the high nibble),
/// padded with `0xF`; `None` if a lane within `count` is not a digit.
/// Lanes past `count` are ignored.
fn pack_digits(low: u64, high: u64, count: usize) -> Option<[u8; 8]> {
    let [a, b, c, d] = pack_half(low, count.min(8))?;
    let [e, f, g, h] = pack_half(high, count.saturating_sub(8))?;
    Some([a, b, c, d, e, f, g, h])
}

/// Up to eight ASCII digits (the low `count` lanes of `raw`) as four BCD
/// bytes, the lanes past `count` as `0xF` nibbles.
fn pack_half(raw: u64, count: usize) -> Option<[u8; 4]> {
    let lanes = lane_mask(count);
    let r = raw & lanes;
    // A digit is 0x30 to 0x39: high nibble 3, and the low one plus 6 does
    // not carry into bit 4 (no carry leaves a lane: 15 + 6).
    let not_three = (r ^ (0x30 * ONES)) & (0xF0 * ONES);
    let over_nine = ((r & (0x0F * ONES)) + 0x06 * ONES) & (0x10 * ONES);
    if (not_three | over_nine) & lanes != 0 {
        return None;
    }
    let nibbles = (r & (0x0F * ONES)) | ((0x0F * ONES) & !lanes);
    // Lanes 2k and 2k+1 into one byte in the 16-bit lane k, then the four
    // bytes together.
    let wide = 0x00FF_00FF_00FF_00FF_u64;
    let pairs = ((nibbles & wide) << 4) | ((nibbles >> 8) & wide);
    let pairs = (pairs | (pairs >> 8)) & 0x0000_FFFF_0000_FFFF;
    let pairs = (pairs | (pairs >> 16)) & 0xFFFF_FFFF;
    let [a, b, c, d, ..] = pairs.to_le_bytes();
    Some([a, b, c, d])
}

/// HMAC-SHA256 from the key's precomputed midstates: the inner hash runs
/// from the inner state over the message, the outer one from the outer
/// state over the inner hash. Its buffers are zeroized on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
struct Mac {
    state: [u32; 8],
    block: [u8; 64],
    /// Bytes waiting in `block` (always below 64 between calls).
    pos: usize,
    /// Message bytes so far.
    len: u64,
}

impl Mac {
    fn new(states: &MacStates) -> Self {
        Self {
            state: states.inner,
            block: [0; 64],
            pos: 0,
            len: 0,
        }
    }

    fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let free = &mut self.block[self.pos..];
            let take = free.len().min(data.len());
            free[..take].copy_from_slice(&data[..take]);
            data = &data[take..];
            self.pos += take;
            self.len += take as u64; // at most 64
            if self.pos == 64 {
                compress256(&mut self.state, core::slice::from_ref(&self.block));
                self.pos = 0;
            }
        }
    }

    /// Pads and finishes the inner hash, then the outer one; the MAC.
    fn finish(mut self, outer: &[u32; 8]) -> [u8; 32] {
        // The inner hash has the key block (64 bytes) before the message.
        let bits = (64 + self.len) * 8;
        self.block[self.pos] = 0x80;
        self.block[self.pos + 1..].fill(0);
        if self.pos >= 56 {
            compress256(&mut self.state, core::slice::from_ref(&self.block));
            self.block.fill(0);
        }
        self.block[56..].copy_from_slice(&bits.to_be_bytes());
        compress256(&mut self.state, core::slice::from_ref(&self.block));

        // The outer hash: 64 key bytes and the 32-byte inner hash.
        self.block.fill(0);
        for (chunk, word) in self.block.chunks_exact_mut(4).zip(self.state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        self.block[32] = 0x80;
        self.block[56..].copy_from_slice(&((64u64 + 32) * 8).to_be_bytes());
        self.state = *outer;
        compress256(&mut self.state, core::slice::from_ref(&self.block));
        let mut mac = [0u8; 32];
        for (chunk, word) in mac.chunks_exact_mut(4).zip(self.state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        mac
    }
}

/// Overwrites the stack below the caller's frame ([`SCRUB_BYTES`], or
/// [`SCRUB_BYTES_SOFT`] where SHA-256 runs in software): where the
/// derivation just ran, and where the compression function may have
/// spilled the midstates it loaded. No `unsafe`: a zeroed local array the
/// optimizer must keep, in a frame of its own right below the caller's.
#[inline(always)]
pub(crate) fn scrub_stack() {
    if sha_extensions() {
        scrub_words::<{ SCRUB_BYTES / 8 }>();
    } else {
        scrub_words::<{ SCRUB_BYTES_SOFT / 8 }>();
    }
}

/// `WORDS` zeroed words of stack, kept.
#[inline(never)]
fn scrub_words<const WORDS: usize>() {
    let mut area = [0u64; WORDS];
    black_box(&mut area);
}

/// Whether `sha2` runs SHA-256 on the CPU's SHA extensions: its own test
/// (x86 with `sha` and `sse4.1`, unless built with its software backend),
/// answered from the standard library's cached CPU detection.
fn sha_extensions() -> bool {
    #[cfg(all(
        any(target_arch = "x86", target_arch = "x86_64"),
        not(any(sha2_backend = "soft", sha2_256_backend = "soft"))
    ))]
    {
        std::arch::is_x86_feature_detected!("sha") && std::arch::is_x86_feature_detected!("sse4.1")
    }
    #[cfg(not(all(
        any(target_arch = "x86", target_arch = "x86_64"),
        not(any(sha2_backend = "soft", sha2_256_backend = "soft"))
    )))]
    {
        false
    }
}

fn len_byte(field: &[u8]) -> u8 {
    // Purposes are at most 32 bytes and E.164 at most 16.
    u8::try_from(field.len()).unwrap_or(u8::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyId;
    use crate::phone::{PhoneNumber, PhonePolicy};
    use crate::subject::Purpose;

    fn subject(purpose: Purpose) -> SubjectKey {
        let phone = PhoneNumber::parse("+447401101801", &PhonePolicy::default());
        SubjectKey::new(purpose, phone.unwrap_or_else(|e| panic!("{e}")))
    }

    /// `derive(key(1), login, +447401101801, [0; 16], generation 1, 6)`
    /// under V1, as the code before the midstates derived it.
    const GOLDEN_V1: &str = "103074";

    fn key(byte: u8) -> SecretKey {
        SecretKey::new(KeyId(1), &[byte; 32]).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn derivation_is_deterministic_and_bound_to_every_field() {
        let s = subject(Purpose::Login);
        let base = derive_with(Derivation::V1, &key(1), &s, &[0; 16], 0, 6);
        assert_eq!(base.len(), 6);
        assert!(base.as_str().bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(
            base,
            derive_with(Derivation::V1, &key(1), &s, &[0; 16], 0, 6)
        );
        // Each field changes the code (for these fixed inputs; a collision is
        // a 1-in-10^6 event per field, checked once here).
        let variants = [
            derive_with(Derivation::V1, &key(2), &s, &[0; 16], 0, 6),
            derive_with(
                Derivation::V1,
                &key(1),
                &subject(Purpose::Onboarding),
                &[0; 16],
                0,
                6,
            ),
            derive_with(Derivation::V1, &key(1), &s, &[1; 16], 0, 6),
            derive_with(Derivation::V1, &key(1), &s, &[0; 16], 1, 6),
        ];
        for v in &variants {
            assert_ne!(v.as_str(), base.as_str());
        }
        // A longer code extends the shorter one: digits come from one stream.
        let long = derive_with(Derivation::V1, &key(1), &s, &[0; 16], 0, 10);
        assert!(long.as_str().starts_with(base.as_str()));
    }

    /// Today's V1, written with the `hmac` crate as it was before the
    /// midstates: the reference V1 must match code for code.
    fn v1_reference(key: &[u8], s: &SubjectKey, nonce: &[u8; 16], generation: u32) -> [u8; 32] {
        use hmac::{Hmac, KeyInit, Mac};
        let mut mac =
            <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|e| panic!("{e}"));
        let purpose = s.purpose().as_str().as_bytes();
        let phone = s.phone().e164().as_bytes();
        mac.update(DOMAIN_V1);
        mac.update(&[len_byte(purpose)]);
        mac.update(purpose);
        mac.update(&[len_byte(phone)]);
        mac.update(phone);
        mac.update(nonce);
        mac.update(&generation.to_be_bytes());
        mac.update(&[0]);
        mac.finalize().into_bytes().into()
    }

    fn digits_of(mac: &[u8], want: usize) -> String {
        mac.iter()
            .filter(|&&b| b < REJECT_FROM)
            .take(want)
            .map(|b| char::from(b'0' + b % 10))
            .collect()
    }

    #[test]
    fn v1_is_todays_derivation() {
        let purposes = [
            Purpose::Login,
            Purpose::Onboarding,
            Purpose::custom("a-purpose-of-exactly-32-bytes.xx").unwrap_or_else(|e| panic!("{e}")),
        ];
        for (i, purpose) in purposes.into_iter().enumerate() {
            let s = subject(purpose);
            for key_len in [32usize, 47, 64] {
                let raw: Vec<u8> = (0..key_len)
                    .map(|b| u8::try_from((b * 7 + i) % 251).unwrap_or(0))
                    .collect();
                let key = SecretKey::new(KeyId(1), &raw).unwrap_or_else(|e| panic!("{e}"));
                for generation in [0, 1, u32::MAX] {
                    let nonce = [u8::try_from(key_len).unwrap_or(0); 16];
                    let want = digits_of(&v1_reference(&raw, &s, &nonce, generation), 6);
                    let got = derive_with(Derivation::V1, &key, &s, &nonce, generation, 6);
                    assert_eq!(got.as_str(), want);
                }
            }
        }
        // A golden value, so a change of both sides together is seen too.
        let code = derive_with(
            Derivation::V1,
            &key(1),
            &subject(Purpose::Login),
            &[0; 16],
            1,
            6,
        );
        assert_eq!(code.as_str(), GOLDEN_V1);
    }

    /// V2 is HMAC-SHA256 over its documented message.
    #[test]
    fn v2_is_hmac_over_its_message() {
        use hmac::{Hmac, KeyInit, Mac};
        let s = subject(Purpose::Onboarding);
        let nonce = [3u8; 16];
        let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&[1; 32])
            .unwrap_or_else(|e| panic!("{e}"));
        let mut message = Vec::new();
        message.extend_from_slice(b"of2");
        message.extend_from_slice(&nonce);
        message.extend_from_slice(&7u32.to_be_bytes());
        message.push(0);
        // +447401101801: twelve digits, then four 0xF nibbles.
        message.extend_from_slice(&[0x44, 0x74, 0x01, 0x10, 0x18, 0x01, 0xFF, 0xFF]);
        message.push(10);
        message.extend_from_slice(b"onboarding");
        assert!(message.len() <= 55, "one block after the inner pad");
        mac.update(&message);
        let want = digits_of(&mac.finalize().into_bytes(), 8);
        let got = derive_with(Derivation::V2, &key(1), &s, &nonce, 7, 8);
        assert_eq!(got.as_str(), want);
        assert_ne!(
            got.as_str(),
            derive_with(Derivation::V1, &key(1), &s, &nonce, 7, 8).as_str()
        );
        // The longest purpose that keeps V2 at two compressions.
        let fixed = 3 + NONCE_LEN + 4 + 1 + 8 + 1;
        assert_eq!(55 - fixed, 22);
    }

    /// V2Bound is V2's message with its own tag and the nonce field
    /// replaced by SHA-256(nonce ‖ context digest), truncated.
    #[test]
    fn v2_bound_is_hmac_over_its_message() {
        use hmac::{Hmac, KeyInit, Mac};
        use sha2::Digest;
        let context = crate::Context::transaction("12.50 EUR", "ACME Ltd");
        let s = subject(Purpose::Onboarding).bound_to(context);
        let nonce = [3u8; 16];
        let mixed = sha2::Sha256::new()
            .chain_update(nonce)
            .chain_update(context.digest())
            .finalize();
        let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&[1; 32])
            .unwrap_or_else(|e| panic!("{e}"));
        let mut message = Vec::new();
        message.extend_from_slice(b"ofc");
        message.extend_from_slice(&mixed[..16]);
        message.extend_from_slice(&7u32.to_be_bytes());
        message.push(0);
        message.extend_from_slice(&[0x44, 0x74, 0x01, 0x10, 0x18, 0x01, 0xFF, 0xFF]);
        message.push(10);
        message.extend_from_slice(b"onboarding");
        mac.update(&message);
        let want = digits_of(&mac.finalize().into_bytes(), 8);
        let got = derive_with(Derivation::V2Bound, &key(1), &s, &nonce, 7, 8);
        assert_eq!(got.as_str(), want);
        // Unbound, the same subject derives V2 as before.
        let plain = subject(Purpose::Onboarding);
        assert_eq!(
            derive_with(Derivation::V2, &key(1), &s, &nonce, 7, 8).as_str(),
            derive_with(Derivation::V2, &key(1), &plain, &nonce, 7, 8).as_str()
        );
    }

    #[test]
    fn v2_is_bound_to_every_field() {
        let s = subject(Purpose::Login);
        let d = |key: &SecretKey, s: &SubjectKey, nonce: &[u8; 16], generation: u32| {
            derive_with(Derivation::V2, key, s, nonce, generation, 10)
        };
        let base = d(&key(1), &s, &[0; 16], 0);
        let other = |number: &str| {
            let phone = PhoneNumber::parse(number, &PhonePolicy::default());
            SubjectKey::new(Purpose::Login, phone.unwrap_or_else(|e| panic!("{e}")))
        };
        for v in [
            d(&key(2), &s, &[0; 16], 0),
            d(&key(1), &subject(Purpose::Onboarding), &[0; 16], 0),
            d(&key(1), &other("+447401101802"), &[0; 16], 0),
            d(&key(1), &other("+14155550123"), &[0; 16], 0),
            d(&key(1), &s, &[1; 16], 0),
            d(&key(1), &s, &[0; 16], 1),
        ] {
            assert_ne!(v.as_str(), base.as_str());
        }
        assert_eq!(base, d(&key(1), &s, &[0; 16], 0));
    }

    /// The word-wide digit extraction gives what the byte stream gives,
    /// for every length, on tags with and without rejected bytes.
    #[test]
    fn first_digits_agree_with_the_byte_stream() {
        let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut fast = 0;
        for round in 0..20_000u32 {
            let mut mac = [0u32; 8];
            for w in &mut mac {
                *w = u32::try_from(next() >> 32).unwrap_or(0);
            }
            // Every byte value in every lane, the rejected ones included.
            if round < 256 * 8 {
                let lane = round / 256;
                let value = round % 256;
                let word = usize::try_from(lane / 4).unwrap_or(0);
                let shift = 24 - 8 * (lane % 4);
                mac[word] = (mac[word] & !(0xFF << shift)) | (value << shift);
            }
            let mut bytes = [0u8; 32];
            for (chunk, word) in bytes.chunks_exact_mut(4).zip(mac) {
                chunk.copy_from_slice(&word.to_be_bytes());
            }
            for want in 4..=MAX_CODE_LEN {
                let mut slow = Code {
                    digits: [0; MAX_CODE_LEN],
                    len: 0,
                };
                let mut n = 0;
                take_digits(&mut slow, &mut n, want, &bytes);
                let quick = first_digits(&mac, want);
                if let Some(digits) = quick {
                    fast += 1;
                    assert_eq!(n, want);
                    assert_eq!(digits, slow.digits, "{mac:08x?} {want}");
                } else {
                    let first = &bytes[..want.min(8)];
                    assert!(want > 8 || first.iter().any(|&b| b >= REJECT_FROM));
                }
            }
        }
        assert!(fast > 20_000 * 4, "the word path is the usual one: {fast}");
    }

    /// The word-wide packing of a `PhoneNumber` is the byte-wise one.
    #[test]
    fn packed_phone_is_packed_digits() {
        let mut parsed = 0;
        for number in [
            "+447401101801",
            "+14155550123",
            "+5076264773",
            "+862012345678",
            "+4915112345678",
            "+33612345678",
            "+61412345678",
            "+8613800138000",
            "+1242359000",
        ] {
            // Numbers this policy refuses do not reach the derivation.
            let Ok(phone) = PhoneNumber::parse(number, &PhonePolicy::default()) else {
                continue;
            };
            parsed += 1;
            assert_eq!(
                packed_phone(&phone),
                packed_digits(phone.e164_bytes()),
                "{number}"
            );
            assert!(packed_phone(&phone).is_some());
        }
        assert!(parsed >= 5, "{parsed} numbers parsed");
        // Every count and digit, and a non-digit in each lane.
        for count in 1..=16usize {
            let digits: Vec<u8> = (0..count)
                .map(|i| b'0' + u8::try_from((i * 7 + count) % 10).unwrap_or(0))
                .collect();
            let mut e164 = vec![b'+'];
            e164.extend_from_slice(&digits);
            let packed = packed_digits(&e164).unwrap_or_else(|| panic!("{count}"));
            let mut want = [0xFFu8; 8];
            for (i, d) in digits.iter().enumerate() {
                let nibble = d - b'0';
                want[i / 2] = if i % 2 == 0 {
                    (nibble << 4) | 0x0F
                } else {
                    (want[i / 2] & 0xF0) | nibble
                };
            }
            assert_eq!(packed, want, "{count}");
            for lane in 0..count {
                for bad in [b'/', b':', b'a', b'+', 0, 0xB0, 0xFF] {
                    let mut wrong = e164.clone();
                    wrong[1 + lane] = bad;
                    assert_eq!(packed_digits(&wrong), None, "{count} {lane} {bad}");
                }
            }
        }
    }

    #[test]
    fn packed_digits_are_injective_on_canonical_numbers() {
        assert_eq!(
            packed_digits(b"+1"),
            Some([0x1F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
        );
        assert_eq!(
            packed_digits(b"+10"),
            Some([0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
        );
        assert_eq!(
            packed_digits(b"+1234567890123456"),
            Some([0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56])
        );
        for bad in [&b""[..], b"+", b"1234", b"+12a", b"+12345678901234567"] {
            assert_eq!(packed_digits(bad), None, "{bad:?}");
        }
        // Numbers that differ only by trailing zeros, or by length, pack
        // apart: a digit is never 0xF.
        let mut seen = std::collections::HashSet::new();
        for n in ["+1", "+10", "+100", "+01", "+001", "+1000000000000000"] {
            assert!(seen.insert(packed_digits(n.as_bytes())), "{n}");
        }
    }

    /// New validations derive with V2; a record written before, with
    /// derivation 1, still checks with V1 and resends its V1 code; an
    /// unknown derivation cannot be checked and ends as expired.
    #[test]
    fn engine_derives_v2_and_still_checks_v1_records() {
        use crate::record::Record;
        use crate::{Engine, Error, KeyRing, Policy, ResendMode};
        use rand_core::SeedableRng;
        let policy = Policy::builder()
            .resend_mode(ResendMode::SameCode)
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let engine = Engine::new(policy, KeyRing::new(key(1)));
        let s = subject(Purpose::Login);
        let now = time::macros::datetime!(2026-11-22 12:00 UTC);
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(11);
        let step = engine.start(None, &s, crate::Channel::Sms, now, &mut rng);
        let record = step.write.unwrap_or_else(|| panic!("a record"));
        let sent = step.outcome.unwrap_or_else(|e| panic!("{e}"));
        let v = record
            .current
            .as_ref()
            .unwrap_or_else(|| panic!("a validation"));
        assert_eq!(v.derivation, 2);
        let v2 = Derivation::V2.derive(&key(1), &s, &v.nonce, record.generation(), 6);
        let v1 = Derivation::V1.derive(&key(1), &s, &v.nonce, record.generation(), 6);
        assert_eq!(sent.code, v2);
        assert_ne!(v1, v2);

        let with = |derivation: u8| -> Record {
            let mut r = record.clone();
            if let Some(v) = r.current.as_mut() {
                v.derivation = derivation;
            }
            r
        };
        let check = |r: &Record, code: &Code| {
            engine
                .verify(Some(r), &s, code.as_str(), now)
                .outcome
                .map(|ok| ok.generation)
        };
        let old = with(1);
        assert_eq!(check(&old, &v1), Ok(record.generation()));
        assert!(matches!(check(&old, &v2), Err(Error::CodeMismatch { .. })));
        assert_eq!(check(&record, &v2), Ok(record.generation()));
        assert!(matches!(
            check(&record, &v1),
            Err(Error::CodeMismatch { .. })
        ));
        // A derivation this build does not have (4): no one can check it.
        assert_eq!(check(&with(4), &v2), Err(Error::Expired));

        // A resend of an old record's code is its V1 code, unchanged.
        let later = now + time::Duration::minutes(2);
        let resent = engine.resend(Some(&old), &s, None, later, &mut rng).outcome;
        let resent = resent.unwrap_or_else(|e| panic!("{e}"));
        assert!(!resent.new_code);
        assert_eq!(resent.code, v1);
    }

    #[test]
    fn input_parsing() {
        let ok = |s: &str| CodeInput::parse(s, 6).is_ok();
        assert!(ok("123456"));
        assert!(ok(" 123-456 "));
        assert!(ok("12 34 56"));
        for bad in [
            "12345",
            "1234567",
            "12345a",
            "١٢٣٤٥٦",
            "123456\n",
            "",
            "+123456",
            "12.3456",
        ] {
            assert!(!ok(bad), "{bad:?}");
        }
        assert!(!ok(&format!("123456{}", " ".repeat(80))));
    }

    #[test]
    fn matching_is_exact() {
        let code = derive_with(
            Derivation::V1,
            &key(1),
            &subject(Purpose::Login),
            &[9; 16],
            3,
            6,
        );
        let input = CodeInput::parse(code.as_str(), 6).unwrap_or_else(|_| panic!());
        assert!(code.matches(&input));
        let mut wrong = code.as_str().as_bytes().to_vec();
        wrong[5] = if wrong[5] == b'9' { b'0' } else { wrong[5] + 1 };
        let wrong = String::from_utf8(wrong).unwrap_or_default();
        let input = CodeInput::parse(&wrong, 6).unwrap_or_else(|_| panic!());
        assert!(!code.matches(&input));
        assert!(!format!("{code:?}").contains(code.as_str()));
    }
}
