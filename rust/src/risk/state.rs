//! The compact per-account risk state: velocity as a source and as a destination, recent
//! counterparties, and a few lifetime figures, stored as opaque bytes with the account.
//!
//! Layout (version 1; integers are LEB128 varints unless said otherwise):
//! ```text
//! u8  version (= 1)
//! u8  flags (reserved, 0)
//! last_out_s        seconds of the last payment FROM the account (0: none)
//! out_total         payments from the account, ever (any outcome)
//! out_log_sum_milli sum over authorized payments of round(1000 * ln(1 + amount)) (usual amount)
//! out_authorized    authorized payments from the account, ever
//! last_in_s         seconds of the last payment TO the account (0: none)
//! in_total          payments to the account, ever (any outcome)
//! out buckets: n, then per bucket: minute delta, count, declines, amount    (ascending minutes)
//! in buckets:  n, then per bucket: minute delta, count, declines, amount
//! destinations: n, then per entry: u64 LE id hash, u32 LE last minute (authorized payments)
//! sources:      n, then per entry: u64 LE id hash, u32 LE last minute (payments received)
//! ```
//! A bucket is one minute (`now_s / 60`) that saw payments. Buckets a day old or older are
//! dropped on every write. The bound: at most [`MAX_BUCKETS`] buckets per direction (when a
//! write would exceed it, the two oldest buckets merge into one that keeps the later minute, so
//! the last hour, at most 61 minutes, is always exact and the day is exact while the account
//! has payments in at most `MAX_BUCKETS` distinct minutes of it), [`MAX_DESTINATIONS`] recent
//! destinations and [`MAX_SOURCES`] recent sources (least recently seen evicted). The encoded
//! state is never longer than [`MAX_ENCODED_LEN`] bytes (a test checks it at the extremes).
//!
//! Decoding never panics: bytes that are not a valid version-1 state decode as the empty state
//! with [`State::corrupt`] set, so a damaged row costs history, never a payment.

/// Most minute buckets kept per direction (source and destination).
pub const MAX_BUCKETS: usize = 90;
/// Most recent destinations kept (for `is_new_destination_for_source`).
pub const MAX_DESTINATIONS: usize = 24;
/// Most recent sources kept (for distinct sources per hour / day as a destination).
pub const MAX_SOURCES: usize = 40;
/// The largest encoded state: the header (6 varints of at most 10 bytes, 2 bytes), 2 buckets
/// lists (count varint + each bucket: minute delta ≤ 5, count ≤ 5, declines ≤ 5, amount ≤ 10),
/// 2 counterparty lists (count varint + 12 bytes each).
pub const MAX_ENCODED_LEN: usize =
    2 + 6 * 10 + 2 * (2 + MAX_BUCKETS * 25) + (2 + 12 * MAX_DESTINATIONS) + (2 + 12 * MAX_SOURCES);

pub const VERSION: u8 = 1;
pub const MINUTES_PER_HOUR: u32 = 60;
pub const MINUTES_PER_DAY: u32 = 1440;

/// What happened to a payment, as the state counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Money moved or is held (manual review included).
    Authorized,
    /// Refused for funds.
    Declined,
    /// Refused by risk.
    Blocked,
}

impl Outcome {
    pub fn parse(s: &str) -> Option<Outcome> {
        match s {
            "authorized" => Some(Outcome::Authorized),
            "declined" => Some(Outcome::Declined),
            "blocked" => Some(Outcome::Blocked),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bucket {
    pub minute: u32,
    pub count: u32,
    pub declines: u32,
    /// Sum of the amounts of all payments of the minute (any outcome), saturating.
    pub amount: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub id_hash: u64,
    pub minute: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct State {
    pub last_out_s: u64,
    pub out_total: u64,
    pub out_log_sum_milli: u64,
    pub out_authorized: u64,
    pub last_in_s: u64,
    pub in_total: u64,
    pub out: Vec<Bucket>,
    pub inbound: Vec<Bucket>,
    pub destinations: Vec<Seen>,
    pub sources: Vec<Seen>,
    /// The bytes given were not a valid state (decoded as empty).
    pub corrupt: bool,
}

/// Window sums over buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Window {
    pub count: u64,
    pub declines: u64,
    pub amount: u64,
}

/// An account id (16 bytes, or anything) folded to 64 bits: FNV-1a, stable across versions
/// and processes (it is stored).
pub fn id_hash(id: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in id {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

pub fn minute_of(now_s: i64) -> u32 {
    u32::try_from(now_s.max(0) / 60).unwrap_or(u32::MAX)
}

/// Sums the buckets with `minute > now_minute - span` (and not after `now_minute`).
pub fn window(buckets: &[Bucket], now_minute: u32, span: u32) -> Window {
    let start = now_minute.saturating_sub(span);
    let mut w = Window::default();
    for b in buckets.iter().rev() {
        if b.minute <= start && now_minute >= span {
            break;
        }
        if b.minute > now_minute {
            continue;
        }
        w.count += u64::from(b.count);
        w.declines += u64::from(b.declines);
        w.amount = w.amount.saturating_add(b.amount);
    }
    w
}

/// How many entries were seen in the window `minute > now_minute - span`.
pub fn seen_in(entries: &[Seen], now_minute: u32, span: u32) -> u64 {
    entries
        .iter()
        .filter(|e| e.minute <= now_minute && (now_minute < span || e.minute > now_minute - span))
        .count() as u64
}

impl State {
    /// `None` or empty bytes: the empty state. Garbage: the empty state with `corrupt` set.
    pub fn decode(bytes: Option<&[u8]>) -> State {
        match bytes {
            None => State::default(),
            Some([]) => State::default(),
            Some(b) => decode_v1(b).unwrap_or_else(|| State {
                corrupt: true,
                ..State::default()
            }),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            64 + 12 * (self.out.len() + self.inbound.len())
                + 12 * (self.destinations.len() + self.sources.len()),
        );
        out.push(VERSION);
        out.push(0);
        for v in [
            self.last_out_s,
            self.out_total,
            self.out_log_sum_milli,
            self.out_authorized,
            self.last_in_s,
            self.in_total,
        ] {
            put_varint(&mut out, v);
        }
        for buckets in [&self.out, &self.inbound] {
            put_varint(&mut out, buckets.len() as u64);
            let mut prev = 0u32;
            for b in buckets.iter() {
                put_varint(&mut out, u64::from(b.minute - prev));
                prev = b.minute;
                put_varint(&mut out, u64::from(b.count));
                put_varint(&mut out, u64::from(b.declines));
                put_varint(&mut out, b.amount);
            }
        }
        for seen in [&self.destinations, &self.sources] {
            put_varint(&mut out, seen.len() as u64);
            for e in seen.iter() {
                out.extend_from_slice(&e.id_hash.to_le_bytes());
                out.extend_from_slice(&e.minute.to_le_bytes());
            }
        }
        out
    }

    /// Has an authorized payment from this account to `destination` been seen (recent set)?
    pub fn knows_destination(&self, destination: &[u8]) -> bool {
        let h = id_hash(destination);
        self.destinations.iter().any(|e| e.id_hash == h)
    }

    /// The mean of `ln(1 + amount)` over authorized payments from the account, if any.
    pub fn out_log_mean(&self) -> Option<f64> {
        if self.out_authorized == 0 {
            None
        } else {
            Some(self.out_log_sum_milli as f64 / 1000.0 / self.out_authorized as f64)
        }
    }

    /// Records one payment: as its source (`counterparty` = its destination) or as its
    /// destination (`counterparty` = its source).
    pub fn record(
        &mut self,
        now_s: i64,
        as_source: bool,
        counterparty: &[u8],
        amount_minor: i64,
        outcome: Outcome,
    ) {
        let now_minute = minute_of(now_s);
        let now_u = u64::try_from(now_s.max(0)).unwrap_or(0);
        let amount = u64::try_from(amount_minor.max(0)).unwrap_or(0);
        let declined = outcome != Outcome::Authorized;
        let h = id_hash(counterparty);
        if as_source {
            self.last_out_s = self.last_out_s.max(now_u);
            self.out_total = self.out_total.saturating_add(1);
            if !declined {
                self.out_authorized = self.out_authorized.saturating_add(1);
                let milli = ((amount as f64).ln_1p() * 1000.0).round() as u64;
                self.out_log_sum_milli = self.out_log_sum_milli.saturating_add(milli);
                touch(&mut self.destinations, h, now_minute, MAX_DESTINATIONS);
            }
            add_to_buckets(&mut self.out, now_minute, amount, declined);
        } else {
            self.last_in_s = self.last_in_s.max(now_u);
            self.in_total = self.in_total.saturating_add(1);
            touch(&mut self.sources, h, now_minute, MAX_SOURCES);
            add_to_buckets(&mut self.inbound, now_minute, amount, declined);
        }
        // Whatever a day old is gone, on both sides (the other side may not be written for a while).
        let horizon = now_minute.saturating_sub(MINUTES_PER_DAY);
        if now_minute >= MINUTES_PER_DAY {
            self.out.retain(|b| b.minute > horizon);
            self.inbound.retain(|b| b.minute > horizon);
        }
    }
}

fn touch(entries: &mut Vec<Seen>, id_hash: u64, minute: u32, cap: usize) {
    if let Some(e) = entries.iter_mut().find(|e| e.id_hash == id_hash) {
        e.minute = e.minute.max(minute);
        return;
    }
    if entries.len() >= cap {
        // Evict the least recently seen (the first of them on ties).
        if let Some((i, _)) = entries.iter().enumerate().min_by_key(|(_, e)| e.minute) {
            entries.remove(i);
        }
    }
    entries.push(Seen { id_hash, minute });
}

fn add_to_buckets(buckets: &mut Vec<Bucket>, minute: u32, amount: u64, declined: bool) {
    // Buckets are ascending; a payment is nearly always in the last minute or a new one, but a
    // process whose clock is behind may write an earlier minute: it goes where it belongs.
    let pos = buckets.partition_point(|b| b.minute < minute);
    if pos < buckets.len() && buckets[pos].minute == minute {
        let b = &mut buckets[pos];
        b.count = b.count.saturating_add(1);
        b.declines = b.declines.saturating_add(u32::from(declined));
        b.amount = b.amount.saturating_add(amount);
    } else {
        buckets.insert(
            pos,
            Bucket {
                minute,
                count: 1,
                declines: u32::from(declined),
                amount,
            },
        );
    }
    if buckets.len() > MAX_BUCKETS {
        // Merge the two oldest; the merged bucket keeps the later minute.
        let first = buckets.remove(0);
        let b = &mut buckets[0];
        b.count = b.count.saturating_add(first.count);
        b.declines = b.declines.saturating_add(first.declines);
        b.amount = b.amount.saturating_add(first.amount);
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A cursor over state bytes; every read checks bounds.
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, pos: 0 }
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    #[inline]
    pub(crate) fn varint(&mut self) -> Option<u64> {
        // Most fields (counts, minute deltas) fit one byte.
        let first = *self.bytes.get(self.pos)?;
        if first < 0x80 {
            self.pos += 1;
            return Some(u64::from(first));
        }
        self.varint_long()
    }

    fn varint_long(&mut self) -> Option<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            let part = u64::from(b & 0x7f);
            if shift == 63 && part > 1 {
                return None;
            }
            v |= part << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    pub(crate) fn u32v(&mut self) -> Option<u32> {
        u32::try_from(self.varint()?).ok()
    }

    pub(crate) fn fixed<const N: usize>(&mut self) -> Option<[u8; N]> {
        let end = self.pos.checked_add(N)?;
        let s = self.bytes.get(self.pos..end)?;
        self.pos = end;
        s.try_into().ok()
    }

    pub(crate) fn done(&self) -> bool {
        self.pos == self.bytes.len()
    }
}

fn decode_buckets(c: &mut Cursor<'_>) -> Option<Vec<Bucket>> {
    let n = usize::try_from(c.varint()?).ok()?;
    if n > MAX_BUCKETS {
        return None;
    }
    let mut out = Vec::with_capacity(n);
    let mut minute = 0u32;
    for i in 0..n {
        let delta = c.u32v()?;
        if i > 0 && delta == 0 {
            return None;
        }
        minute = minute.checked_add(delta)?;
        out.push(Bucket {
            minute,
            count: c.u32v()?,
            declines: c.u32v()?,
            amount: c.varint()?,
        });
    }
    Some(out)
}

fn decode_seen(c: &mut Cursor<'_>, cap: usize) -> Option<Vec<Seen>> {
    let n = usize::try_from(c.varint()?).ok()?;
    if n > cap {
        return None;
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let id_hash = u64::from_le_bytes(c.fixed::<8>()?);
        let minute = u32::from_le_bytes(c.fixed::<4>()?);
        out.push(Seen { id_hash, minute });
    }
    Some(out)
}

/// The version-1 header both readers start with: the size bound, the version bytes and the six
/// lifetime totals (last_out_s, out_total, out_log_sum_milli, out_authorized, last_in_s, in_total).
fn open_v1(bytes: &[u8]) -> Option<(Cursor<'_>, [u64; 6])> {
    if bytes.len() > MAX_ENCODED_LEN {
        return None;
    }
    let mut c = Cursor::new(bytes);
    if c.u8()? != VERSION || c.u8()? != 0 {
        return None;
    }
    let mut totals = [0u64; 6];
    for total in &mut totals {
        *total = c.varint()?;
    }
    Some((c, totals))
}

fn decode_v1(bytes: &[u8]) -> Option<State> {
    let (
        mut c,
        [
            last_out_s,
            out_total,
            out_log_sum_milli,
            out_authorized,
            last_in_s,
            in_total,
        ],
    ) = open_v1(bytes)?;
    let mut s = State {
        last_out_s,
        out_total,
        out_log_sum_milli,
        out_authorized,
        last_in_s,
        in_total,
        ..State::default()
    };
    s.out = decode_buckets(&mut c)?;
    s.inbound = decode_buckets(&mut c)?;
    s.destinations = decode_seen(&mut c, MAX_DESTINATIONS)?;
    s.sources = decode_seen(&mut c, MAX_SOURCES)?;
    if !c.done() {
        return None;
    }
    Some(s)
}

/// What the risk step reads from one account's state, windows evaluated at one minute: computed
/// straight from the bytes ([`summarize`]), without building a [`State`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    pub last_out_s: u64,
    pub out_total: u64,
    pub out_log_sum_milli: u64,
    pub out_authorized: u64,
    pub last_in_s: u64,
    pub in_total: u64,
    pub out_10m: Window,
    pub out_hour: Window,
    pub out_day: Window,
    pub in_hour: Window,
    pub in_day: Window,
    /// The destination asked about is among the recent destinations.
    pub knows_destination: bool,
    pub sources_hour: u64,
    pub sources_day: u64,
    pub corrupt: bool,
}

/// Minutes in the short source window (card-testing bursts).
pub const MINUTES_SHORT: u32 = 10;

fn in_window(minute: u32, now_minute: u32, span: u32) -> bool {
    minute <= now_minute && (now_minute < span || minute > now_minute - span)
}

fn add(w: &mut Window, b: &Bucket) {
    w.count += u64::from(b.count);
    w.declines += u64::from(b.declines);
    w.amount = w.amount.saturating_add(b.amount);
}

impl Summary {
    /// The summary of a decoded state (the reference [`summarize`] is tested against).
    pub fn of_state(s: &State, now_minute: u32, destination: Option<&[u8]>) -> Summary {
        Summary {
            last_out_s: s.last_out_s,
            out_total: s.out_total,
            out_log_sum_milli: s.out_log_sum_milli,
            out_authorized: s.out_authorized,
            last_in_s: s.last_in_s,
            in_total: s.in_total,
            out_10m: window(&s.out, now_minute, MINUTES_SHORT),
            out_hour: window(&s.out, now_minute, MINUTES_PER_HOUR),
            out_day: window(&s.out, now_minute, MINUTES_PER_DAY),
            in_hour: window(&s.inbound, now_minute, MINUTES_PER_HOUR),
            in_day: window(&s.inbound, now_minute, MINUTES_PER_DAY),
            knows_destination: destination.is_some_and(|d| s.knows_destination(d)),
            sources_hour: seen_in(&s.sources, now_minute, MINUTES_PER_HOUR),
            sources_day: seen_in(&s.sources, now_minute, MINUTES_PER_DAY),
            corrupt: s.corrupt,
        }
    }

    /// The mean of `ln(1 + amount)` over authorized payments from the account, if any.
    pub fn out_log_mean(&self) -> Option<f64> {
        if self.out_authorized == 0 {
            None
        } else {
            Some(self.out_log_sum_milli as f64 / 1000.0 / self.out_authorized as f64)
        }
    }
}

/// [`Summary::of_state`] of [`State::decode`], in one pass over the bytes with no allocation
/// (the risk step runs it twice per payment). Bytes that are not a valid state: the empty
/// summary with `corrupt` set, exactly as `decode`.
pub fn summarize(bytes: Option<&[u8]>, now_minute: u32, destination: Option<&[u8]>) -> Summary {
    match bytes {
        None | Some([]) => Summary::default(),
        Some(b) => summarize_v1(b, now_minute, destination).unwrap_or(Summary {
            corrupt: true,
            ..Summary::default()
        }),
    }
}

fn summarize_v1(bytes: &[u8], now_minute: u32, destination: Option<&[u8]>) -> Option<Summary> {
    let (
        mut c,
        [
            last_out_s,
            out_total,
            out_log_sum_milli,
            out_authorized,
            last_in_s,
            in_total,
        ],
    ) = open_v1(bytes)?;
    let mut s = Summary {
        last_out_s,
        out_total,
        out_log_sum_milli,
        out_authorized,
        last_in_s,
        in_total,
        ..Summary::default()
    };
    for outbound in [true, false] {
        let n = usize::try_from(c.varint()?).ok()?;
        if n > MAX_BUCKETS {
            return None;
        }
        let mut minute = 0u32;
        for i in 0..n {
            let delta = c.u32v()?;
            if i > 0 && delta == 0 {
                return None;
            }
            minute = minute.checked_add(delta)?;
            let b = Bucket {
                minute,
                count: c.u32v()?,
                declines: c.u32v()?,
                amount: c.varint()?,
            };
            if !in_window(minute, now_minute, MINUTES_PER_DAY) {
                continue;
            }
            if outbound {
                add(&mut s.out_day, &b);
                if in_window(minute, now_minute, MINUTES_PER_HOUR) {
                    add(&mut s.out_hour, &b);
                }
                if in_window(minute, now_minute, MINUTES_SHORT) {
                    add(&mut s.out_10m, &b);
                }
            } else {
                add(&mut s.in_day, &b);
                if in_window(minute, now_minute, MINUTES_PER_HOUR) {
                    add(&mut s.in_hour, &b);
                }
            }
        }
    }
    let wanted = destination.map(id_hash);
    for (cap, outbound) in [(MAX_DESTINATIONS, true), (MAX_SOURCES, false)] {
        let n = usize::try_from(c.varint()?).ok()?;
        if n > cap {
            return None;
        }
        for _ in 0..n {
            let h = u64::from_le_bytes(c.fixed::<8>()?);
            let minute = u32::from_le_bytes(c.fixed::<4>()?);
            if outbound {
                s.knows_destination |= wanted == Some(h);
            } else {
                s.sources_hour += u64::from(in_window(minute, now_minute, MINUTES_PER_HOUR));
                s.sources_day += u64::from(in_window(minute, now_minute, MINUTES_PER_DAY));
            }
        }
    }
    if !c.done() {
        return None;
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000; // a minute boundary: 30_000_000 * 60

    fn rec(s: &mut State, t: i64, src: bool, cp: u8, amount: i64, o: Outcome) {
        s.record(t, src, &[cp; 16], amount, o);
    }

    #[test]
    fn empty_and_garbage() {
        assert_eq!(State::decode(None), State::default());
        assert_eq!(State::decode(Some(&[])), State::default());
        for garbage in [&[0u8][..], &[1], &[2, 0, 0], &[1, 0, 0xff], &[0xff; 40]] {
            let s = State::decode(Some(garbage));
            assert!(s.corrupt, "{garbage:?}");
            assert_eq!(s.out_total, 0);
        }
        // Trailing bytes are garbage too.
        let mut b = State::default().encode();
        assert!(!State::decode(Some(&b)).corrupt);
        b.push(0);
        assert!(State::decode(Some(&b)).corrupt);
    }

    #[test]
    fn never_panics_on_truncations_and_flips() {
        let mut s = State::default();
        for i in 0..50 {
            rec(
                &mut s,
                T0 + i * 37,
                i % 2 == 0,
                (i % 7) as u8,
                1000 + i,
                Outcome::Authorized,
            );
        }
        let b = s.encode();
        assert_eq!(State::decode(Some(&b)), s);
        for n in 0..b.len() {
            let _ = State::decode(Some(&b[..n]));
        }
        for i in 0..b.len() {
            for bit in 0..8 {
                let mut c = b.clone();
                c[i] ^= 1 << bit;
                let d = State::decode(Some(&c));
                // Whatever decodes re-encodes without panicking.
                let _ = d.encode();
            }
        }
    }

    #[test]
    fn windows_count_and_expire() {
        let mut s = State::default();
        rec(&mut s, T0, true, 1, 100, Outcome::Authorized);
        rec(&mut s, T0 + 30, true, 2, 200, Outcome::Declined);
        rec(&mut s, T0 + 120, true, 3, 300, Outcome::Blocked);
        let m = minute_of(T0 + 120);
        let w = window(&s.out, m, MINUTES_PER_HOUR);
        assert_eq!((w.count, w.declines, w.amount), (3, 2, 600));
        // 59 minutes after the first minute, all three still in the hour.
        let m = minute_of(T0 + 59 * 60);
        assert_eq!(window(&s.out, m, MINUTES_PER_HOUR).count, 3);
        // 60 minutes after: the first minute (2 payments) left the hour, not the day.
        let m = minute_of(T0 + 60 * 60);
        assert_eq!(window(&s.out, m, MINUTES_PER_HOUR).count, 1);
        assert_eq!(window(&s.out, m, MINUTES_PER_DAY).count, 3);
        let m = minute_of(T0 + 1440 * 60);
        assert_eq!(window(&s.out, m, MINUTES_PER_DAY).count, 1);
        let m = minute_of(T0 + 1442 * 60);
        assert_eq!(window(&s.out, m, MINUTES_PER_DAY).count, 0);
        // A write a day later drops the old buckets.
        rec(&mut s, T0 + 1442 * 60, true, 1, 5, Outcome::Authorized);
        assert_eq!(s.out.len(), 1);
        assert_eq!(s.out_total, 4);
        assert_eq!(s.out_authorized, 2);
    }

    #[test]
    fn destinations_only_when_authorized() {
        let mut s = State::default();
        rec(&mut s, T0, true, 9, 100, Outcome::Declined);
        assert!(!s.knows_destination(&[9; 16]));
        rec(&mut s, T0, true, 9, 100, Outcome::Authorized);
        assert!(s.knows_destination(&[9; 16]));
        assert!(!s.knows_destination(&[8; 16]));
    }

    #[test]
    fn bounded_under_heavy_use() {
        let mut s = State::default();
        let mut max_len = 0;
        for i in 0..10_000i64 {
            let t = T0 + i * 17;
            rec(
                &mut s,
                t,
                true,
                (i % 251) as u8,
                1_000_000_000_000_000,
                Outcome::Declined,
            );
            rec(
                &mut s,
                t,
                false,
                (i % 241) as u8,
                1_000_000_000_000_000,
                Outcome::Authorized,
            );
            max_len = max_len.max(s.encode().len());
        }
        assert!(s.out.len() <= MAX_BUCKETS && s.inbound.len() <= MAX_BUCKETS);
        assert!(max_len <= MAX_ENCODED_LEN, "{max_len}");
        // Amounts of 10**15 every 17 seconds, both directions: still under 4 KiB.
        assert!(max_len <= 4096, "{max_len}");
        // The last hour stays exact: 17 s apart, ~212 payments in the hour.
        let now = T0 + 9_999 * 17;
        let m = minute_of(now);
        let exact = (0..10_000i64)
            .filter(|i| minute_of(T0 + i * 17) > m - 60)
            .count() as u64;
        assert_eq!(window(&s.out, m, MINUTES_PER_HOUR).count, exact);
        let d = State::decode(Some(&s.encode()));
        assert_eq!(d, s);
    }

    #[test]
    fn out_of_order_minutes() {
        let mut s = State::default();
        rec(&mut s, T0 + 600, true, 1, 1, Outcome::Authorized);
        rec(&mut s, T0, true, 1, 1, Outcome::Authorized);
        rec(&mut s, T0 + 300, true, 1, 1, Outcome::Authorized);
        let mins: Vec<u32> = s.out.iter().map(|b| b.minute).collect();
        assert!(mins.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(State::decode(Some(&s.encode())), s);
    }

    /// A small deterministic generator (no dependency for tests).
    fn lcg(seed: &mut u64) -> u64 {
        *seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        *seed >> 33
    }

    #[test]
    fn summarize_equals_decode_then_summary() {
        let mut seed = 42u64;
        for _ in 0..200 {
            let mut s = State::default();
            let n = lcg(&mut seed) % 300;
            for _ in 0..n {
                let t = T0 + (lcg(&mut seed) % 200_000) as i64;
                let cp = [(lcg(&mut seed) % 50) as u8; 16];
                let o = match lcg(&mut seed) % 3 {
                    0 => Outcome::Authorized,
                    1 => Outcome::Declined,
                    _ => Outcome::Blocked,
                };
                s.record(
                    t,
                    lcg(&mut seed) % 2 == 0,
                    &cp,
                    (lcg(&mut seed) % 10_000) as i64,
                    o,
                );
            }
            let b = s.encode();
            for _ in 0..5 {
                let now = minute_of(T0 + (lcg(&mut seed) % 300_000) as i64);
                let dst = [(lcg(&mut seed) % 50) as u8; 16];
                let want = Summary::of_state(&State::decode(Some(&b)), now, Some(&dst));
                assert_eq!(summarize(Some(&b), now, Some(&dst)), want);
                // Damaged bytes agree too.
                let mut c = b.clone();
                let at = (lcg(&mut seed) as usize) % c.len();
                c[at] ^= 1 << (lcg(&mut seed) % 8);
                let want = Summary::of_state(&State::decode(Some(&c)), now, Some(&dst));
                assert_eq!(summarize(Some(&c), now, Some(&dst)), want);
                let cut = &b[..at];
                let want = Summary::of_state(&State::decode(Some(cut)), now, None);
                assert_eq!(summarize(Some(cut), now, None), want);
            }
        }
        assert_eq!(summarize(None, 5, None), Summary::default());
        assert!(summarize(Some(&[9]), 5, None).corrupt);
    }

    #[test]
    fn sources_distinct() {
        let mut s = State::default();
        for i in 0..100u8 {
            rec(&mut s, T0 + i64::from(i), false, i, 10, Outcome::Authorized);
        }
        assert_eq!(s.sources.len(), MAX_SOURCES);
        assert_eq!(
            seen_in(&s.sources, minute_of(T0 + 100), MINUTES_PER_HOUR),
            MAX_SOURCES as u64
        );
        assert_eq!(
            seen_in(&s.sources, minute_of(T0 + 3 * 3600), MINUTES_PER_HOUR),
            0
        );
    }
}
