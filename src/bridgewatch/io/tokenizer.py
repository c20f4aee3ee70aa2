"""One-pass numba tokenizer for ratings TSV bytes: rows straight into compact arrays.

``parse_rows`` walks a buffer of whole lines once, a word or a byte at a time, and for each row
writes the fields scoring needs (note code, rater code, value, time, tag bits, population-sampled
flag) into preallocated arrays; note ids and rater ids become dense codes through open-addressing hash
tables that live in plain arrays. Everything else in the row is skipped unread.

It only accepts what it is sure of: unquoted fields, ``\\n`` line ends, printable ASCII rater
ids, integers of at most 19 digits. Anything else stops it with ``FALLBACK`` (the caller then
reads the file with the careful pyarrow path) or with ``BAD_VALUE`` / ``RAGGED`` naming the row,
column and byte span, so the caller words the error with the slow path's check (``scan.check_text``).

Hot reads go through two intrinsics, ``_word`` (eight bytes in one unaligned load) and ``_at``
(one element), that skip numba's negative-index fixup: every index here is in range, and the
fixups cost more than the parsing (measured: a third of the time).

Rows are parsed ``BATCH`` at a time and then stored: the hash slots of a batch's ids, asked
for (``_prefetch``) as each id is parsed, have reached the cache by the time they are looked up
(measured: a quarter of the parse time was waiting for them). Rows are stored whole, so every
stop leaves the state at a row boundary and the call can resume after the caller grows an array
(the arrays have room for a batch before one is parsed). The careful path is the slow twin:
tests check the two agree on valid files and on where they reject bad ones.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from llvmlite import ir
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.arrayobj import load_item

# Column roles (one per header column). A BIT column (tag, helpful, notHelpful) sets its bit
# (``bits`` argument) in a row word: tags at ``schema.TAG_BIT``, helpful and notHelpful above.
SKIP, NOTE, RATER, CREATED, BIT, LEVEL, SOURCE = range(7)
HELPFUL_BIT, NOT_HELPFUL_BIT = 30, 31
_TAG_MASK = np.uint32((1 << 30) - 1)

# Return codes of ``parse_rows``.
NEED_MORE, GROW_OUT, GROW_DROPPED, GROW_NOTES, GROW_RATERS, GROW_POOL, BAD_VALUE, RAGGED, FALLBACK = range(9)

# Slots of the int64 state vector ``st``.
(POS, N_OUT, N_DROPPED, N_NOTES, N_NAMES, POOL_USED, RECORD) = range(7)
(ERR_COL, ERR_START, ERR_END, ERR_FIELDS) = range(7, 11)
STATE_SIZE = 11
BATCH = 32  # rows parsed before they are stored (the output and tables have room for a batch)

_I64_MAX = np.uint64(2**63 - 1)
_EMPTY = np.int32(-1)


_HI32 = np.uint64(0xFFFFFFFF00000000)
_ODD = np.uint64(0xFF00FF00FF00FF00)
_FOUR_TABS = np.uint64(0x0900090009000900)
_EVEN_NO_LOW = np.uint64(0x00FE00FE00FE00FE)
_FOUR_ZEROS = np.uint64(0x0030003000300030)
_EVEN_LOW = np.uint64(0x0001000100010001)
_LO32 = np.uint64(0xFFFFFFFF)


@nb.njit(cache=True, inline="always")
def _match(buf: np.ndarray, s: int, e: int, cand: np.ndarray, offs: np.ndarray) -> int:
    """Index of the candidate (bytes ``cand[offs[i]:offs[i+1]]``) equal to ``buf[s:e]``, or -1."""
    for i in range(offs.shape[0] - 1):
        a, b = _at(offs, i), _at(offs, i + 1)
        if b - a != e - s:
            continue
        same = True
        for k in range(b - a):
            if _at(cand, a + k) != _at(buf, s + k):
                same = False
                break
        if same:
            return i
    return -1


@intrinsic
def _prefetch(typingctx, arr, idx):  # type: ignore[no-untyped-def]
    """Start loading ``arr[idx]`` into the cache (LLVM's prefetch hint); nothing else.

    Hash table probes are random reads far apart; asked for as soon as the key is hashed, they
    arrive while the rest of the row is parsed (measured: a fifth off the parse time)."""

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        aty = signature.args[0]
        ary = context.make_array(aty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aty, ary, [args[1]], wraparound=False)
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch.p0"
        )
        # read, high temporal locality, data cache
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return nb.types.void(arr, idx), codegen


_ONES = np.uint64(0x0101010101010101)
_HIGHS = np.uint64(0x8080808080808080)
_LOW35 = np.uint64(0x2323232323232323)  # 35 in every byte


@intrinsic
def _at(typingctx, arr, i):  # type: ignore[no-untyped-def]
    """``arr[i]`` for an ``i`` known to be in range, without numba's negative-index fixup."""

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        aty = signature.args[0]
        ary = context.make_array(aty)(context, builder, args[0])
        return load_item(context, builder, aty, builder.gep(ary.data, [args[1]]))

    return arr.dtype(arr, i), codegen


@intrinsic
def _word(typingctx, buf, p):  # type: ignore[no-untyped-def]
    """The eight bytes at ``buf[p]`` as a little-endian uint64: one unaligned load (indexing
    byte by byte costs ~45 instructions, numba checking each index for wraparound)."""

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        aty = signature.args[0]
        ary = context.make_array(aty)(context, builder, args[0])
        ptr = builder.gep(ary.data, [args[1]])
        load = builder.load(builder.bitcast(ptr, ir.IntType(64).as_pointer()), align=1)
        return load

    return nb.types.uint64(buf, p), codegen


@nb.njit(cache=True, inline="always")
def _special(w: np.uint64) -> np.uint64:
    """Nonzero when a byte of ``w`` is <= 34 (tab, newline, '"', '\\r', space...) or >= 128."""
    return (((w - _LOW35) & ~w) | w) & _HIGHS


@nb.njit(cache=True, inline="always")
def _eight_digits(w: np.uint64) -> bool:
    """Whether all eight bytes of ``w`` are '0'..'9' (simdjson's test)."""
    hi = np.uint64(0xF0F0F0F0F0F0F0F0)
    return ((w & hi) | (((w + np.uint64(0x0606060606060606)) & hi) >> np.uint64(4))) == np.uint64(
        0x3333333333333333
    )


@nb.njit(cache=True, inline="always")
def _eight_value(w: np.uint64) -> np.uint64:
    """The number written by eight ASCII digits, first digit in the lowest byte (simdjson)."""
    w = ((w & np.uint64(0x0F0F0F0F0F0F0F0F)) * np.uint64(2561)) >> np.uint64(8)
    w = ((w & np.uint64(0x00FF00FF00FF00FF)) * np.uint64(6553601)) >> np.uint64(16)
    return ((w & np.uint64(0x0000FFFF0000FFFF)) * np.uint64(42949672960001)) >> np.uint64(32)


@nb.njit(cache=True, inline="always")
def _mix(h1: np.uint64, h2: np.uint64, w: np.uint64) -> tuple[np.uint64, np.uint64]:
    h1 = (h1 ^ w) * np.uint64(0x100000001B3)
    h1 ^= h1 >> np.uint64(29)
    h2 = (h2 + w) * np.uint64(0xFF51AFD7ED558CCD)
    h2 ^= h2 >> np.uint64(32)
    return h1, h2


@nb.njit(cache=True, inline="always")
def _finish(h1: np.uint64, h2: np.uint64, n: int) -> tuple[np.uint64, np.uint64]:
    """Two independent 64-bit hashes of a string from its 8-byte words (zero padded) and length:
    a 96-bit key in the table, collisions ~1e-17 at 1e6 ids."""
    h1 = (h1 ^ np.uint64(n) ^ (h1 >> np.uint64(33))) * np.uint64(0xC4CEB9FE1A85EC53)
    h2 = (h2 + np.uint64(n) ^ (h2 >> np.uint64(31))) * np.uint64(0x94D049BB133111EB)
    return h1 ^ (h1 >> np.uint64(33)), h2 ^ (h2 >> np.uint64(29))


@nb.njit(cache=True, inline="always")
def _note_home(table: np.ndarray, key: np.int64) -> int:
    """First slot probed for ``key`` in the note table."""
    h = np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)
    return np.int64((h ^ (h >> np.uint64(29))) & np.uint64(table.shape[0] // 2 - 1))


@nb.njit(cache=True, inline="always")
def note_slot(table: np.ndarray, key: np.int64) -> int:
    """Slot of ``key`` in the note table: int64[2S] of (key, code + 1) pairs, 0 = empty slot
    (where an absent key goes)."""
    mask = np.uint64(table.shape[0] // 2 - 1)
    i = _note_home(table, key)
    while _at(table, 2 * i + 1) != 0 and _at(table, 2 * i) != key:
        i = np.int64((np.uint64(i) + np.uint64(1)) & mask)
    return i


@nb.njit(cache=True, inline="always")
def rater_slot(table: np.ndarray, h1: np.uint64, h2: np.uint64) -> int:
    """Slot of a 96-bit key (h1, high half of h2) in the rater table: uint64[2S] of
    (h1, high32(h2) | code + 1) pairs, 0 = empty slot. One cache line per probe."""
    mask = np.uint64(table.shape[0] // 2 - 1)
    hi = h2 & _HI32
    i = np.int64(h1 & mask)
    while _at(table, 2 * i + 1) != 0 and (_at(table, 2 * i) != h1 or (_at(table, 2 * i + 1) & _HI32) != hi):
        i = np.int64((np.uint64(i) + np.uint64(1)) & mask)
    return i


@nb.njit(cache=True, nogil=True)
def rehash_notes(old: np.ndarray, new: np.ndarray) -> None:
    """Move every entry of the old note table into the (larger, zeroed) new one."""
    for i in range(old.shape[0] // 2):
        if old[2 * i + 1] != 0:
            j = note_slot(new, old[2 * i])
            new[2 * j] = old[2 * i]
            new[2 * j + 1] = old[2 * i + 1]


@nb.njit(cache=True, nogil=True)
def rehash_raters(old: np.ndarray, new: np.ndarray) -> None:
    """Move every entry of the old rater table into the (larger, zeroed) new one."""
    for i in range(old.shape[0] // 2):
        if old[2 * i + 1] != 0:
            j = rater_slot(new, old[2 * i], old[2 * i + 1])
            new[2 * j] = old[2 * i]
            new[2 * j + 1] = old[2 * i + 1]


@nb.njit(cache=True, inline="always")
def _to_delimiter(buf: np.ndarray, p: int, wlim: int) -> int:
    """Position of the tab or newline ending the field at ``p``; -1 on a quote or '\\r'."""
    while p <= wlim and not _special(_word(buf, p)):
        p += 8
    while True:
        while _at(buf, p) > 34:
            p += 1
        b = _at(buf, p)
        if b == 9 or b == 10:
            return p
        if b == 34 or b == 13:
            return -1
        p += 1


@nb.njit(cache=True, nogil=True)
def parse_rows(
    buf, end, roles, bitpos, runs, lev_b, lev_o, lev_v, src_b, src_o, src_pop,
    out_note, out_rater, out_value, out_created, out_tags, out_pop, dropped,
    notes, note_ids, raters, name_off, pool, st, lo_ms, hi_ms,
):  # fmt: skip
    """Parse the rows of ``buf[st[POS]:end]`` (whole lines, the last ending in ``\\n``); returns
    a code above, with ``st`` at the first row not stored.

    ``roles``/``bitpos``: int8[C] role and bit position per header column; ``runs[c]``: how many
    BIT columns from c on (before the last column) have consecutive bit positions. ``lev_*``/``src_*``: the
    helpfulnessLevel and ratingSourceBucketed values as bytes + offsets, with their float32
    value / bool population flag. Outputs: int32 note/rater codes, float32 value, int64 time,
    uint32 tags, bool population flag, for kept rows; ``dropped``: int64 global record numbers
    of rows without a value. ``notes``/``raters``: the hash tables (``note_slot``,
    ``rater_slot``); ``note_ids[code]``: int64 note id; rater ``code``'s bytes are
    ``pool[name_off[code]:name_off[code + 1]]``.
    """
    ncols = roles.shape[0]
    last = ncols - 1
    wlim = buf.shape[0] - 8  # whole-word reads stay inside the buffer
    rh1 = np.uint64(0)
    rh2 = np.uint64(0)
    # Rows are parsed BATCH at a time, then stored: the hash table slots asked for (``_prefetch``)
    # while a batch is parsed have arrived by the time its rows look them up.
    b_note = np.empty(BATCH, np.int64)
    b_h1 = np.empty(BATCH, np.uint64)
    b_h2 = np.empty(BATCH, np.uint64)
    b_rs = np.empty(BATCH, np.int64)
    b_re = np.empty(BATCH, np.int64)
    b_created = np.empty(BATCH, np.int64)
    b_level = np.empty(BATCH, np.int64)
    b_bits = np.empty(BATCH, np.uint32)
    b_pop = np.empty(BATCH, np.bool_)
    pos = st[POS]
    while pos < end:
        # Room for a whole batch, checked once.
        if st[N_OUT] + BATCH > out_note.shape[0]:
            return GROW_OUT
        if st[N_DROPPED] + BATCH > dropped.shape[0]:
            return GROW_DROPPED
        if 4 * (st[N_NOTES] + BATCH) > notes.shape[0] or st[N_NOTES] + BATCH > note_ids.shape[0]:
            return GROW_NOTES
        if 4 * (st[N_NAMES] + BATCH) > raters.shape[0] or st[N_NAMES] + BATCH + 1 > name_off.shape[0]:
            return GROW_RATERS
        n = 0
        names = 0
        stop = NEED_MORE
        while n < BATCH and pos < end:
            if _at(buf, pos) == 10:
                return FALLBACK  # a blank line: the careful path skips it and counts lines itself
            p = pos
            bad = -1
            bad_s = 0
            bad_e = 0
            note = np.int64(0)
            rs = 0
            re = 0
            created = np.int64(0)
            level = -1
            bits = np.uint32(0)
            pop = False
            fields = 0
            c = 0
            while c < ncols:
                role = _at(roles, c)
                fs = p
                ok = True
                if role == BIT:
                    if _at(runs, c) >= 4 and p <= wlim:
                        # Four 0/1 fields at once: "d\td\td\td\t" in one word.
                        w = _word(buf, p)
                        if (w & _ODD) == _FOUR_TABS and (w & _EVEN_NO_LOW) == _FOUR_ZEROS:
                            w &= _EVEN_LOW
                            w = (
                                w | (w >> np.uint64(15)) | (w >> np.uint64(30)) | (w >> np.uint64(45))
                            ) & np.uint64(15)
                            bits |= np.uint32(w) << np.uint32(_at(bitpos, c))
                            p += 8
                            c += 4
                            fields = c
                            continue
                    b0 = _at(buf, p)
                    if b0 == 49:
                        bits |= np.uint32(1) << np.uint32(_at(bitpos, c))
                        p += 1
                    elif b0 == 48:
                        p += 1
                elif role == SKIP:
                    p = _to_delimiter(buf, p, wlim)
                    if p < 0:
                        return FALLBACK
                elif role in (LEVEL, SOURCE):
                    while _at(buf, p) > 34:
                        p += 1
                    if p > fs:
                        if role == LEVEL:
                            level = _match(buf, fs, p, lev_b, lev_o)
                            ok = level >= 0
                        else:
                            which = _match(buf, fs, p, src_b, src_o)
                            ok = which >= 0
                            pop = ok and _at(src_pop, which)
                elif role == RATER:
                    # Hash eight bytes at a time while no byte needs a look, then byte by byte.
                    h1 = np.uint64(0x9E3779B97F4A7C15)
                    h2 = np.uint64(0xC2B2AE3D27D4EB4F)
                    while p <= wlim:
                        w = _word(buf, p)
                        if _special(w):
                            break
                        h1, h2 = _mix(h1, h2, w)
                        p += 8
                    w = np.uint64(0)
                    k = 0
                    while True:
                        b = _at(buf, p)
                        if b == 9 or b == 10:
                            break
                        if b < 32 or b > 127 or b == 34:
                            return FALLBACK
                        w |= np.uint64(b) << np.uint64(8 * k)
                        k += 1
                        p += 1
                        if k == 8:
                            h1, h2 = _mix(h1, h2, w)
                            w = np.uint64(0)
                            k = 0
                    if k:
                        h1, h2 = _mix(h1, h2, w)
                    ok = p > fs
                    rs = fs
                    re = p
                    rh1, rh2 = _finish(h1, h2, p - fs)
                    _prefetch(raters, 2 * np.int64(rh1 & np.uint64(raters.shape[0] // 2 - 1)))
                else:  # NOTE, CREATED: -?digits
                    neg = _at(buf, p) == 45
                    if neg:
                        p += 1
                    v = np.uint64(0)
                    digits_at = p
                    while p <= wlim:
                        w = _word(buf, p)
                        if not _eight_digits(w):
                            break
                        v = v * np.uint64(100000000) + _eight_value(w)  # wraps past 19 digits: rejected
                        p += 8
                    while True:
                        d = np.uint64(_at(buf, p)) - np.uint64(48)  # wraps: bytes below '0' are large
                        if d > 9:
                            break
                        v = v * np.uint64(10) + d
                        p += 1
                    n_digits = p - digits_at
                    ok = n_digits >= 1 and n_digits <= 19 and v <= _I64_MAX
                    iv = -np.int64(v) if neg else np.int64(v)
                    if role == NOTE:
                        note = iv
                        _prefetch(notes, 2 * _note_home(notes, iv))
                    else:
                        created = iv
                        ok = ok and iv >= lo_ms and iv <= hi_ms
                b = _at(buf, p)
                if b != 9 and b != 10:
                    # The typed parse stopped inside the field: the value is bad (or needs care).
                    p = _to_delimiter(buf, p, wlim)
                    if p < 0:
                        return FALLBACK
                    b = _at(buf, p)
                    ok = False
                if not ok and bad < 0:
                    bad, bad_s, bad_e = c, fs, p
                fields = c + 1
                if b == 10:
                    break
                if c == last:  # more fields than the header: count them
                    while b != 10:
                        p = _to_delimiter(buf, p + 1, wlim)
                        if p < 0:
                            return FALLBACK
                        b = _at(buf, p)
                        fields += 1
                    break
                p += 1
                c += 1
            if fields != ncols or bad >= 0:
                st[ERR_FIELDS] = fields
                st[ERR_COL] = bad
                st[ERR_START] = bad_s
                st[ERR_END] = bad_e
                stop = RAGGED if fields != ncols else BAD_VALUE
                break
            b_note[n] = note
            b_h1[n] = rh1
            b_h2[n] = rh2
            b_rs[n] = rs
            b_re[n] = re
            b_created[n] = created
            b_level[n] = level
            b_bits[n] = bits
            b_pop[n] = pop
            names += re - rs
            n += 1
            pos = p + 1
        if st[POOL_USED] + names > pool.shape[0]:
            return GROW_POOL  # (nothing stored: the batch is parsed again)
        for j in range(n):  # store: ids get codes (new ones go into the tables), then the row
            note = b_note[j]
            rslot = rater_slot(raters, b_h1[j], b_h2[j])
            nslot = note_slot(notes, note)
            if notes[2 * nslot + 1] == 0:
                code = st[N_NOTES]
                notes[2 * nslot] = note
                notes[2 * nslot + 1] = code + 1
                note_ids[code] = note
                st[N_NOTES] = code + 1
            if raters[2 * rslot + 1] == 0:
                code = st[N_NAMES]
                used = st[POOL_USED]
                rs, re = b_rs[j], b_re[j]
                for k in range(re - rs):
                    pool[used + k] = _at(buf, rs + k)
                raters[2 * rslot] = b_h1[j]
                raters[2 * rslot + 1] = (b_h2[j] & _HI32) | np.uint64(code + 1)
                name_off[code + 1] = used + (re - rs)
                st[POOL_USED] = used + (re - rs)
                st[N_NAMES] = code + 1
            bits = b_bits[j]
            value = np.float32(np.nan)
            if (bits >> np.uint32(HELPFUL_BIT)) & np.uint32(1):
                value = np.float32(1.0)
            if (bits >> np.uint32(NOT_HELPFUL_BIT)) & np.uint32(1):
                value = np.float32(0.0)
            if b_level[j] >= 0:
                value = _at(lev_v, b_level[j])
            if np.isnan(value):
                dropped[st[N_DROPPED]] = st[RECORD]
                st[N_DROPPED] += 1
            else:
                i = st[N_OUT]
                out_note[i] = notes[2 * nslot + 1] - 1
                out_rater[i] = np.int64(raters[2 * rslot + 1] & _LO32) - 1
                out_value[i] = value
                out_created[i] = b_created[j]
                out_tags[i] = bits & _TAG_MASK
                out_pop[i] = b_pop[j]
                st[N_OUT] = i + 1
            st[RECORD] += 1
        st[POS] = pos
        if stop != NEED_MORE:
            return stop
    return NEED_MORE


@nb.njit(cache=True)
def last_newline(buf: np.ndarray, end: int) -> int:
    """Index of the last ``\\n`` in ``buf[:end]``, -1 if none."""
    for i in range(end - 1, -1, -1):
        if _at(buf, i) == 10:
            return i
    return -1
