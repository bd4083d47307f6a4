"""A DEFLATE (RFC 1951) writer specialised for float32 gene columns, in one gzip member.

A gene column of an export is ``n_cells`` little-endian float32 values, typically 90-95%
zeros, whose non-zero values repeat (integer counts; log-normalised values of cells with
integer totals). A general-purpose compressor spends most of its time walking the zero runs
byte by byte. This writer works on 4-byte words instead:

* a run of zero words becomes one literal ``0`` and matches at distance 1 (or only matches
  when the byte before the run is already zero);
* a non-zero word becomes a match against an earlier occurrence of the same 4 bytes (a
  hash chain keyed by the word, at most ``chain`` candidates, distance <= 32768), extended
  word by word as long as the words agree (so "value, then zeros" repeats as one match),
  or four literals when there is none;
* the tokens are written as dynamic-Huffman blocks of at most :data:`BLOCK_TOKENS` tokens
  with canonical codes limited to 15 bits (7 for the code-length code); a block that would
  be larger than its bytes stored is stored instead.

Everything runs in numba with the GIL released, so the export's writer threads compress
columns side by side. The output is one gzip member with the header of SPEC §2.3 (mtime 0,
no name, OS byte 0xFF) and a CRC-32/ISIZE trailer; identical input gives identical bytes.
"""

from __future__ import annotations

import numba
import numpy as np

#: tokens per dynamic-Huffman block (one block per this many literals and matches)
BLOCK_TOKENS = 1 << 16
#: hash-chain candidates examined per non-zero word, by gzip level (index = level)
CHAIN_BY_LEVEL = (0, 1, 1, 1, 2, 2, 2, 4, 8, 16)
#: gzip header of SPEC §2.3: magic, CM=8, no flags, mtime 0, XFL 0, OS 0xFF
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"

_HASH_BITS = 14
_UNSEEN_BITS = 12  # estimated bits of a byte value no value of the column has
# estimated bits of a length code, a distance code and distance 1 (before extra bits), tuned
# on counts and log-normalised columns (benchmarks/run.py's data)
_LEN_BITS = 3
_DIST_BITS = 5
_DIST1_BITS = 2
_MAX_DIST = 32768
_MAX_MATCH_WORDS = (
    64  # 256 bytes, +2 bytes of zero run before them; DEFLATE matches are at most 258 bytes
)

_LEN_BASE = np.array(
    [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99,
     115, 131, 163, 195, 227, 258],
    dtype=np.int64,
)  # fmt: skip
_LEN_EXTRA = np.array(
    [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0],
    dtype=np.int64,
)
_DIST_BASE = np.array(
    [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025,
     1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577],
    dtype=np.int64,
)  # fmt: skip
_DIST_EXTRA = np.array(
    [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12,
     12, 13, 13],
    dtype=np.int64,
)  # fmt: skip
#: order in which the code-length code's lengths are written (RFC 1951 §3.2.7)
_CL_ORDER = np.array(
    [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15], dtype=np.int64
)


def _code_table(base: np.ndarray, size: int) -> np.ndarray:
    """For every length (or distance) below ``size``, the index of its code in ``base``."""
    table = np.zeros(size, dtype=np.int16)  # small: the tables stay in cache
    for i in range(base.size):
        stop = base[i + 1] if i + 1 < base.size else size
        table[base[i] : stop] = i
    return table


_LEN_CODE = _code_table(_LEN_BASE, 259)
_LEN_CODE[258] = 28  # 258 has its own code (285); 227-257 share code 284
_DIST_CODE = _code_table(_DIST_BASE, _MAX_DIST + 1)
#: estimated bits of a match length (:data:`_LEN_BITS` plus its extra bits) and of a distance
#: (:data:`_DIST_BITS` plus extra bits; distance 1, that of zero runs and the commonest,
#: :data:`_DIST1_BITS`): the same for every column, so computed once
_LEN_COST = (_LEN_BITS + _LEN_EXTRA[_LEN_CODE]).astype(np.int16)
_DIST_COST = (_DIST_BITS + _DIST_EXTRA[_DIST_CODE]).astype(np.int16)
_DIST_COST[1] = _DIST1_BITS


# --------------------------------------------------------------------------- tokens
@numba.njit(nogil=True, cache=True)
def _zero_run(tlen, tval, nt, nbytes, prev_zero):
    """Append the tokens of ``nbytes`` zero bytes: matches at distance 1, after one literal
    ``0`` unless the byte before the run is zero; literals when the run is too short."""
    if nbytes <= 0:
        return nt
    if not prev_zero or nbytes < 3:
        tlen[nt] = 0
        tval[nt] = 0
        nt += 1
        nbytes -= 1
        while 0 < nbytes < 3:
            tlen[nt] = 0
            tval[nt] = 0
            nt += 1
            nbytes -= 1
    while nbytes > 0:
        step = min(nbytes, 258)
        if 0 < nbytes - step < 3:
            step = nbytes - 3
        tlen[nt] = step
        tval[nt] = 1
        nt += 1
        nbytes -= step
    return nt


@numba.njit(nogil=True, cache=True)
def _nonzero_words(words):
    """Indices of the non-zero words, and their number."""
    nz = np.empty(words.size + 1, dtype=np.int64)
    n = 0
    for i in range(words.size):
        nz[n] = i
        n += words[i] != 0
    return nz, n


@numba.njit(nogil=True, cache=True)
def _sparse_layout(words, data, nz, nnz):
    """Per non-zero word: the zero bytes right before it (``zb``, capped at 258), its leading
    zero bytes (``lead``) and a key of what follows it (distance to the next non-zero word and
    that word's value); and the histogram of the values' bytes after their leading zeros."""
    freq = np.zeros(256, dtype=np.int64)
    zb = np.zeros(nnz, dtype=np.int64)
    lead = np.zeros(nnz, dtype=np.int64)
    after = np.zeros(nnz, dtype=np.int64)
    nw = words.size
    for k in range(nnz):
        p = nz[k]
        b = 4 * p
        while data[b] == 0:
            b += 1
        lead[k] = b - 4 * p
        for j in range(b, 4 * p + 4):
            freq[data[j]] += 1
        if k == 0:
            z = 4 * p
        else:
            q = nz[k - 1]
            z = 4 * (p - q - 1)
            b = 4 * q + 3
            while data[b] == 0:
                z += 1
                b -= 1
        zb[k] = min(z, 258)
        if k + 1 < nnz:
            after[k] = (nz[k + 1] - p) * 0x100000000 + np.int64(words[nz[k + 1]])
        else:
            after[k] = (nw - p) * 0x100000000
    return zb, lead, after, freq


@numba.njit(nogil=True, cache=True)
def _mix(w, key):
    """Hash (:data:`_HASH_BITS` bits) of a word and a 64-bit key."""
    x = np.uint64(w) ^ (np.uint64(key) * np.uint64(0x9E3779B97F4A7C15))
    x ^= x >> np.uint64(29)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    return np.int64(x >> np.uint64(64 - _HASH_BITS))


@numba.njit(nogil=True, cache=True)
def _run_cost(run, prev_zero, lit_cost, len_cost, dist1_cost):
    """Estimated bits of a zero run of ``run`` bytes written by :func:`_zero_run`."""
    c = 0
    if run <= 0:
        return c
    if not prev_zero or run < 3:
        c += lit_cost[0]
        run -= 1
        while 0 < run < 3:
            c += lit_cost[0]
            run -= 1
    while run > 0:
        step = min(run, 258)
        if 0 < run - step < 3:
            step = run - 3
        c += len_cost[step] + dist1_cost
        run -= step
    return c


@numba.njit(nogil=True, cache=True)
def _value_costs(words, data, nz, nnz, lead, lit_cost, len_cost, dist1_cost):
    """Estimated bits, as literals and zero runs, of each non-zero word's bytes after its
    leading zeros (``lits``) and of the zero run before it (``runs``)."""
    lits = np.zeros(nnz + 1, dtype=np.int64)
    runs = np.zeros(nnz + 1, dtype=np.int64)
    prev_end = 0
    prev_zero = False
    for k in range(nnz):
        p = nz[k]
        c = 0
        for b in range(4 * p + lead[k], 4 * p + 4):
            c += lit_cost[data[b]]
        lits[k] = c
        runs[k] = _run_cost(4 * (p - prev_end) + lead[k], prev_zero, lit_cost, len_cost, dist1_cost)
        prev_end = p + 1
        prev_zero = data[4 * p + 3] == 0
    return lits, runs


@numba.njit(nogil=True, cache=True)
def _tokenize(words, data, nz, nnz, layout, chain, lit_cost, len_cost, dist_cost, tlen, tval):
    """LZ77 tokens of ``data`` (the bytes of ``words``; ``nz[:nnz]`` the non-zero words):
    ``tlen`` 0 for a literal byte ``tval``, else a match of ``tlen`` bytes at distance
    ``tval``. Returns the count. ``layout`` is :func:`_sparse_layout`'s ``zb, lead, after``.

    Zero bytes (runs of zero words and the zero bytes leading a value) become zero runs. A
    non-zero word becomes the match of an earlier occurrence of it, extended forward by whole
    words and backward into the zero run in front of it as far as both agree (of the newest
    occurrence with the same zero run before it, the newest with the same gap and value after
    it, and ``chain`` more of the same value: the one that saves the most bits by the
    estimated costs), or literals."""
    nw = words.size
    zb, lead, after = layout
    lits, runs = _value_costs(words, data, nz, nnz, lead, lit_cost, len_cost, dist_cost[1])
    # tables of sparse index + 1: newest of a value (chained), by value and zero run before,
    # by value and what follows
    head = np.zeros(1 << _HASH_BITS, dtype=np.int32)
    prev = np.zeros(max(nnz, 1), dtype=np.int32)
    side = np.zeros((2, 1 << _HASH_BITS), dtype=np.int32)
    lit0 = lit_cost[0]
    dist1 = dist_cost[1]
    nt = 0
    pos = 0  # words written
    prev_zero = False  # whether the byte before ``pos`` is zero
    k = 0
    while k < nnz:
        p = nz[k]
        w = words[p]
        run = 4 * (p - pos)  # zero bytes pending before word p
        h = _mix(w, 0)
        best_n = 0
        best_m = 0
        best_back = 0
        best_dist = 0
        best_gain = 0
        if chain:
            run_cost = _run_cost(run, prev_zero, lit_cost, len_cost, dist1)
            s0 = side[0, _mix(w, zb[k])]
            s1 = side[1, _mix(w, after[k])]
            if s1 == s0:
                s1 = 0
            cand = head[h]
            steps = -2
            while steps < chain:
                if steps == -2:
                    kc = s0 - 1
                elif steps == -1:
                    kc = s1 - 1
                else:
                    if cand <= 0:
                        break
                    kc = cand - 1
                    cand = prev[kc]
                    if kc + 1 == s0 or kc + 1 == s1:
                        continue  # already tried (does not count against the chain)
                steps += 1
                if kc < 0:
                    continue
                c = nz[kc]
                d = (p - c) * 4
                if d > _MAX_DIST:
                    if steps > 0:
                        break  # the chain only gets older
                    continue
                if words[c] != w:
                    continue
                # forward: whole (gap, value) pairs while both agree, then the common zeros
                m = 0
                gain = lits[k]
                while True:
                    go = (nz[k + m + 1] if k + m + 1 < nnz else nw) - nz[k + m]
                    gr = (nz[kc + m + 1] if kc + m + 1 < nnz else nw) - nz[kc + m]
                    if nz[k + m] - p + go >= _MAX_MATCH_WORDS:
                        n = min(_MAX_MATCH_WORDS, nz[k + m] - p + min(go, gr))
                        break
                    if (
                        go == gr
                        and k + m + 1 < nnz
                        and words[nz[k + m + 1]] == words[nz[kc + m + 1]]
                    ):
                        m += 1
                        gain += runs[k + m] + lits[k + m]
                        continue
                    n = nz[k + m] - p + min(go, gr)
                    if go > gr and gr > 1:  # ends inside our run: saves its literal 0
                        gain += lit0
                    elif go <= gr and k + m + 1 < nnz:  # covers our run but its value's lead
                        gain += runs[k + m + 1] - lead[k + m + 1] * lit0
                    break
                back = min(run, zb[kc], 258 - 4 * n)
                if back == run:  # covers the whole run (a partial cover saves ~nothing)
                    gain += run_cost
                gain -= len_cost[4 * n + back] + dist_cost[d]
                if gain > best_gain or (
                    gain == best_gain and 4 * n + back > 4 * best_n + best_back
                ):
                    best_n = n
                    best_m = m
                    best_back = back
                    best_dist = d
                    best_gain = gain
            prev[k] = head[h]
            head[h] = k + 1
            side[0, _mix(w, zb[k])] = k + 1
            side[1, _mix(w, after[k])] = k + 1
        if best_n == 0:
            nt = _zero_run(tlen, tval, nt, run + lead[k], prev_zero)
            for b in range(4 * p + lead[k], 4 * p + 4):
                tlen[nt] = 0
                tval[nt] = data[b]
                nt += 1
            prev_zero = data[4 * p + 3] == 0
            pos = p + 1
            k += 1
            continue
        nt = _zero_run(tlen, tval, nt, run - best_back, prev_zero)
        tlen[nt] = best_n * 4 + best_back
        tval[nt] = best_dist
        nt += 1
        for j in range(k + 1, k + best_m + 1):  # later words can match what this match copied
            wj = words[nz[j]]
            hj = _mix(wj, 0)
            prev[j] = head[hj]
            head[hj] = j + 1
            side[0, _mix(wj, zb[j])] = j + 1
            side[1, _mix(wj, after[j])] = j + 1
        pos = p + best_n
        prev_zero = data[4 * pos - 1] == 0
        k += best_m + 1
        while k < nnz and nz[k] < pos:  # the match may end inside the 64-word cap's last pair
            k += 1
    nt = _zero_run(tlen, tval, nt, 4 * (nw - pos), prev_zero)
    return nt


@numba.njit(nogil=True, cache=True)
def _lit_costs(freq, nnz):
    """Estimated bits of each literal, from the histogram ``freq`` of the values' bytes (plus one
    ``0`` and one length per zero run); with :data:`_LEN_COST` and :data:`_DIST_COST` they
    decide whether a match pays. (Two passes, the second costed from the first's Huffman
    codes, were 2% smaller and twice as slow.)"""
    freq = freq.copy()
    freq[0] += nnz
    total = 0
    for v in freq:
        total += v
    total += nnz + 1  # a length per zero run, the end of block
    lit_cost = np.empty(256, dtype=np.int64)
    for v in range(256):
        if freq[v] == 0:
            lit_cost[v] = _UNSEEN_BITS
        else:
            lit_cost[v] = max(1, min(15, int(np.round(np.log2(total / freq[v])))))
    return lit_cost


# --------------------------------------------------------------------------- Huffman codes
@numba.njit(nogil=True, cache=True)
def _code_lengths(freq, max_bits):
    """Huffman code lengths of ``freq`` limited to ``max_bits`` (by halving the frequencies
    until the code fits). A single used symbol gets length 1."""
    lengths = np.zeros(freq.size, dtype=np.int64)
    f = freq.copy()
    while True:
        syms = np.nonzero(f)[0]
        m = syms.size
        if m == 0:
            return lengths
        if m == 1:
            lengths[syms[0]] = 1
            return lengths
        order = np.argsort(f[syms], kind="mergesort")
        leaves = syms[order]
        weight = np.empty(2 * m - 1, dtype=np.int64)
        parent = np.empty(2 * m - 1, dtype=np.int64)
        for k in range(m):
            weight[k] = f[leaves[k]]
        leaf = 0
        node = m
        for new in range(m, 2 * m - 1):
            total = 0
            for _ in range(2):  # take the two lightest of the next leaf and the next node
                if leaf < m and (node >= new or weight[leaf] <= weight[node]):
                    pick = leaf
                    leaf += 1
                else:
                    pick = node
                    node += 1
                parent[pick] = new
                total += weight[pick]
            weight[new] = total
        depth = np.zeros(2 * m - 1, dtype=np.int64)
        deepest = 0
        for k in range(2 * m - 3, -1, -1):
            depth[k] = depth[parent[k]] + 1
            if k < m and depth[k] > deepest:
                deepest = depth[k]
        if deepest <= max_bits:
            for k in range(m):
                lengths[leaves[k]] = depth[k]
            return lengths
        for k in range(f.size):
            if f[k] > 0:
                f[k] = (f[k] + 1) // 2


@numba.njit(nogil=True, cache=True)
def _canonical_codes(lengths):
    """Canonical codes of ``lengths`` (RFC 1951 §3.2.2), bit-reversed for LSB-first output."""
    count = np.zeros(16, dtype=np.int64)
    for v in lengths:
        count[v] += 1
    count[0] = 0
    nxt = np.zeros(16, dtype=np.int64)
    code = 0
    for b in range(1, 16):
        code = (code + count[b - 1]) << 1
        nxt[b] = code
    codes = np.zeros(lengths.size, dtype=np.int64)
    for s in range(lengths.size):
        n = lengths[s]
        if n:
            c = nxt[n]
            nxt[n] += 1
            r = 0
            for _ in range(n):
                r = (r << 1) | (c & 1)
                c >>= 1
            codes[s] = r
    return codes


# --------------------------------------------------------------------------- bits
@numba.njit(nogil=True, cache=True)
def _put(out, pos, acc, nacc, value, nbits):
    """Append ``nbits`` (<= 16) bits of ``value`` to the bit buffer ``acc`` (``nacc`` < 8
    bits), writing its whole bytes to ``out[pos:]``."""
    acc |= value << nacc
    nacc += nbits
    while nacc >= 8:
        out[pos] = acc & 0xFF
        acc >>= 8
        nacc -= 8
        pos += 1
    return pos, acc, nacc


@numba.njit(nogil=True, cache=True)
def _align(out, pos, acc, nacc):
    """Pad the bit buffer with zero bits to a byte boundary and write it all out."""
    while nacc > 0:
        out[pos] = acc & 0xFF
        acc >>= 8
        nacc -= 8
        pos += 1
    return pos, 0, 0


@numba.njit(nogil=True, cache=True)
def _stored(data, start, stop, final, out, pos, acc, nacc):
    """Write ``data[start:stop]`` as stored blocks (the last one final when ``final``)."""
    while True:
        n = min(stop - start, 65535)
        last = final and start + n == stop
        pos, acc, nacc = _put(out, pos, acc, nacc, 1 if last else 0, 3)
        pos, acc, nacc = _align(out, pos, acc, nacc)
        for v in (n & 0xFF, n >> 8, (~n) & 0xFF, ((~n) >> 8) & 0xFF):
            out[pos] = v
            pos += 1
        out[pos : pos + n] = data[start : start + n]
        pos += n
        start += n
        if start == stop:
            return pos, acc, nacc


@numba.njit(nogil=True, cache=True)
def _repeats(rle_sym, rle_extra, nr, r, code, least, most):
    """Append code-length repeat code ``code`` (16, 17 or 18: ``least`` to ``most`` copies)
    while at least ``least`` of the ``r`` copies are left; returns the count and the rest."""
    while r >= least:
        k = min(r, most)
        rle_sym[nr] = code
        rle_extra[nr] = k - least
        nr += 1
        r -= k
    return nr, r


@numba.njit(nogil=True, cache=True)
def _block(tlen, tval, t0, t1, data, b0, final, out, pos, acc, nacc, len_code, dist_code):
    """Write tokens ``t0:t1`` (covering ``data[b0:...]``) as one dynamic-Huffman block, or as
    stored blocks when that is smaller. Returns the bit writer's state and the byte end."""
    lit_freq = np.zeros(286, dtype=np.int64)
    dist_freq = np.zeros(30, dtype=np.int64)
    extra_bits = 0
    b1 = b0
    for t in range(t0, t1):
        n = tlen[t]
        if n == 0:
            lit_freq[tval[t]] += 1
            b1 += 1
        else:
            lc = len_code[n]
            dc = dist_code[tval[t]]
            lit_freq[257 + lc] += 1
            dist_freq[dc] += 1
            extra_bits += _LEN_EXTRA[lc] + _DIST_EXTRA[dc]
            b1 += n
    lit_freq[256] = 1
    # two used codes at least, so that both codes are complete (some inflaters insist)
    if np.count_nonzero(lit_freq) < 2:
        lit_freq[0] += 1
    for k in range(2):
        if np.count_nonzero(dist_freq) < 2 and dist_freq[k] == 0:
            dist_freq[k] = 1
    lit_len = _code_lengths(lit_freq, 15)
    dist_len = _code_lengths(dist_freq, 15)
    hlit = 286
    while lit_len[hlit - 1] == 0:
        hlit -= 1
    hdist = 30
    while dist_len[hdist - 1] == 0:
        hdist -= 1
    # run-length code of the concatenated code lengths (RFC 1951 §3.2.7)
    total = hlit + hdist
    seq = np.empty(total, dtype=np.int64)
    seq[:hlit] = lit_len[:hlit]
    seq[hlit:] = dist_len[:hdist]
    rle_sym = np.empty(total, dtype=np.int64)
    rle_extra = np.zeros(total, dtype=np.int64)
    nr = 0
    i = 0
    while i < total:
        v = seq[i]
        run = 1
        while i + run < total and seq[i + run] == v:
            run += 1
        r = run
        if v == 0:
            nr, r = _repeats(rle_sym, rle_extra, nr, r, 18, 11, 138)
            nr, r = _repeats(rle_sym, rle_extra, nr, r, 17, 3, 10)
        else:
            rle_sym[nr] = v
            nr += 1
            nr, r = _repeats(rle_sym, rle_extra, nr, r - 1, 16, 3, 6)
        while r > 0:
            rle_sym[nr] = v
            nr += 1
            r -= 1
        i += run
    cl_freq = np.zeros(19, dtype=np.int64)
    for k in range(nr):
        cl_freq[rle_sym[k]] += 1
    cl_len = _code_lengths(cl_freq, 7)
    hclen = 19
    while hclen > 4 and cl_len[_CL_ORDER[hclen - 1]] == 0:
        hclen -= 1
    # size of the block in bits, against storing its bytes
    bits = 3 + 14 + 3 * hclen + extra_bits
    for k in range(nr):
        s = rle_sym[k]
        bits += cl_len[s] + (2 if s == 16 else 3 if s == 17 else 7 if s == 18 else 0)
    for k in range(286):
        bits += lit_freq[k] * lit_len[k]
    for k in range(30):
        bits += dist_freq[k] * dist_len[k]
    stored_bits = (b1 - b0) * 8 + ((b1 - b0) // 65535 + 1) * 40 + 10
    if stored_bits < bits and b1 > b0:
        pos, acc, nacc = _stored(data, b0, b1, final, out, pos, acc, nacc)
        return pos, acc, nacc, b1
    lit_code = _canonical_codes(lit_len)
    dist_code_bits = _canonical_codes(dist_len)
    cl_code = _canonical_codes(cl_len)
    pos, acc, nacc = _put(out, pos, acc, nacc, (1 if final else 0) | (2 << 1), 3)
    pos, acc, nacc = _put(out, pos, acc, nacc, hlit - 257, 5)
    pos, acc, nacc = _put(out, pos, acc, nacc, hdist - 1, 5)
    pos, acc, nacc = _put(out, pos, acc, nacc, hclen - 4, 4)
    for k in range(hclen):
        pos, acc, nacc = _put(out, pos, acc, nacc, cl_len[_CL_ORDER[k]], 3)
    for k in range(nr):
        s = rle_sym[k]
        pos, acc, nacc = _put(out, pos, acc, nacc, cl_code[s], cl_len[s])
        if s == 16:
            pos, acc, nacc = _put(out, pos, acc, nacc, rle_extra[k], 2)
        elif s == 17:
            pos, acc, nacc = _put(out, pos, acc, nacc, rle_extra[k], 3)
        elif s == 18:
            pos, acc, nacc = _put(out, pos, acc, nacc, rle_extra[k], 7)
    # a match's length code and extra bits as one bit string, per length
    len_bits = np.zeros(259, dtype=np.int64)
    len_nbits = np.zeros(259, dtype=np.int64)
    for n in range(3, 259):
        lc = len_code[n]
        s = 257 + lc
        len_bits[n] = lit_code[s] | ((n - _LEN_BASE[lc]) << lit_len[s])
        len_nbits[n] = lit_len[s] + _LEN_EXTRA[lc]
    # the tokens, through a 64-bit buffer holding < 16 bits between tokens (a match is at
    # most 20 bits of length and 28 of distance: 63 bits at most)
    for t in range(t0, t1):
        n = tlen[t]
        if n == 0:
            v = tval[t]
            acc |= lit_code[v] << nacc
            nacc += lit_len[v]
        else:
            d = tval[t]
            dc = dist_code[d]
            dist = dist_code_bits[dc] | ((d - _DIST_BASE[dc]) << dist_len[dc])
            acc |= (len_bits[n] | (dist << len_nbits[n])) << nacc
            nacc += len_nbits[n] + dist_len[dc] + _DIST_EXTRA[dc]
        while nacc >= 16:
            out[pos] = acc & 0xFF
            out[pos + 1] = (acc >> 8) & 0xFF
            acc >>= 16
            pos += 2
            nacc -= 16
    while nacc >= 8:
        out[pos] = acc & 0xFF
        acc >>= 8
        pos += 1
        nacc -= 8
    pos, acc, nacc = _put(out, pos, acc, nacc, lit_code[256], lit_len[256])
    return pos, acc, nacc, b1


@numba.njit(nogil=True, cache=True)
def _gzip_words(data, chain, crc, header, len_code, dist_code, len_cost, dist_cost):
    """The gzip member of ``data`` (bytes, a multiple of 4 long) with CRC-32 ``crc``."""
    nbytes = data.size
    words = data.view(np.uint32)
    nz, nnz = _nonzero_words(words)
    cap = 8 * nnz + nbytes // 255 + 16  # at most 4 literals + 2 zero-run tokens per value
    tlen = np.empty(cap, dtype=np.int32)
    tval = np.empty(cap, dtype=np.int32)
    zb, lead, after, freq = _sparse_layout(words, data, nz, nnz)
    lit_cost = _lit_costs(freq, nnz)
    layout = (zb, lead, after)
    nt = _tokenize(words, data, nz, nnz, layout, chain, lit_cost, len_cost, dist_cost, tlen, tval)
    nblocks = max(1, (nt + BLOCK_TOKENS - 1) // BLOCK_TOKENS)
    out = np.empty(nbytes + 5 * (nbytes // 65535 + 2 * nblocks + 2) + 1024, dtype=np.uint8)
    out[: header.size] = header
    pos = header.size
    acc = 0
    nacc = 0
    if nt == 0:  # a final fixed-Huffman block holding only the end-of-block code
        pos, acc, nacc = _put(out, pos, acc, nacc, 3, 10)
    b = 0
    for k in range(nblocks):
        t0 = k * BLOCK_TOKENS
        t1 = min(nt, t0 + BLOCK_TOKENS)
        if t0 >= t1:
            break
        pos, acc, nacc, b = _block(
            tlen, tval, t0, t1, data, b, t1 == nt, out, pos, acc, nacc, len_code, dist_code
        )
    pos, acc, nacc = _align(out, pos, acc, nacc)
    for v in (crc, nbytes & 0xFFFFFFFF):
        for s in range(4):
            out[pos] = (v >> (8 * s)) & 0xFF
            pos += 1
    return out[:pos]


_HEADER_ARRAY = np.frombuffer(GZIP_HEADER, dtype=np.uint8)


def gzip_float32_column(raw: bytes | memoryview | np.ndarray, level: int = 6) -> bytes:
    """Compress the bytes of a float32 column into one reproducible gzip member.

    Parameters
    ----------
    raw
        The column's little-endian bytes; their length must be a multiple of 4.
    level
        gzip level 1-9: how many earlier occurrences of a value are tried as matches
        (:data:`CHAIN_BY_LEVEL`); higher is slower and smaller.

    Returns
    -------
    bytes
        One gzip member (SPEC §2.3 header, CRC-32 and size trailer).
    """
    if not 1 <= int(level) <= 9:
        raise ValueError(f"gzip level must be 1-9, got {level!r}")
    data = np.frombuffer(raw, dtype=np.uint8) if not isinstance(raw, np.ndarray) else raw
    data = np.ascontiguousarray(data.reshape(-1).view(np.uint8))
    if data.size % 4:
        raise ValueError(
            f"a float32 column is a multiple of 4 bytes long, got {data.size}; "
            "compress other payloads with binary.gzip_bytes"
        )
    import deflate  # libdeflate's CRC-32 (carry-less multiply), GIL released

    crc = deflate.crc32(data) if data.size else 0
    tables = (_LEN_CODE, _DIST_CODE, _LEN_COST, _DIST_COST)
    out = _gzip_words(data, CHAIN_BY_LEVEL[int(level)], crc, _HEADER_ARRAY, *tables)
    return out.tobytes()
