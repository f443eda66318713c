/*
 * codec.c — per-record compression (lz4, lz4hc) and checksums (xxh3-64).
 */
#include <lz4.h>
#include <lz4hc.h>
#include <string.h>
#include <xxhash.h>
#ifdef IB_XXH_DISPATCH
#include <xxh_x86dispatch.h>
#endif

#include "internal.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* With IB_XXH_DISPATCH (meson found the dispatching entry points) the
 * header maps XXH3_64bits_withSeed to the variant that uses the widest
 * vector unit of the running CPU; the hash is the same either way. */
uint64_t ib_hash(const void *data, size_t len, uint64_t seed)
{
	return XXH3_64bits_withSeed(data, len, seed);
}

size_t ib_compress_bound(size_t len)
{
	if (len > LZ4_MAX_INPUT_SIZE)
		return 0;
	return (size_t)LZ4_compressBound((int)len);
}

int ib_compress(ibstore_compress how, int level, const void *src, size_t len, void *dst,
		size_t dst_cap, uint32_t *codec_out, size_t *stored_out)
{
	*codec_out = IBSTORE_CODEC_NONE;
	*stored_out = len;
	if (how == IBSTORE_COMPRESS_NONE || len == 0 || len > LZ4_MAX_INPUT_SIZE)
		return 0;
	int cap = dst_cap > (size_t)LZ4_MAX_INPUT_SIZE ? LZ4_MAX_INPUT_SIZE : (int)dst_cap;
	int n;
	if (how == IBSTORE_COMPRESS_LZ4HC)
		n = LZ4_compress_HC(src, dst, (int)len, cap, level);
	else
		n = LZ4_compress_default(src, dst, (int)len, cap);
	if (n <= 0)
		return IBSTORE_ENOMEM;
	/* auto stores raw whenever lz4 does not pay; the explicit codecs keep
	 * lz4 unless it would not shrink at all. */
	size_t pays = how == IBSTORE_COMPRESS_AUTO ? len - len / 16 : len;
	if ((size_t)n >= pays)
		return 0;
	*codec_out = IBSTORE_CODEC_LZ4;
	*stored_out = (size_t)n;
	return 0;
}

/* Samples this large, copied into a loader batch, go out of the cache
 * before anyone reads them (a batch of them is tens of MB), so they are
 * copied with non-temporal stores: the destination is written without
 * first being read in. */
#define STREAM_MIN ((size_t)64 << 10)

static void copy_payload(uint8_t *dst, const uint8_t *src, size_t n)
{
#if defined(__SSE2__)
	if (n >= STREAM_MIN) {
		size_t head = (16 - ((uintptr_t)dst & 15)) & 15;
		memcpy(dst, src, head);
		dst += head, src += head, n -= head;
		for (; n >= 64; dst += 64, src += 64, n -= 64) {
			__m128i a = _mm_loadu_si128((const __m128i *)src);
			__m128i b = _mm_loadu_si128((const __m128i *)(src + 16));
			__m128i c = _mm_loadu_si128((const __m128i *)(src + 32));
			__m128i d = _mm_loadu_si128((const __m128i *)(src + 48));
			_mm_stream_si128((__m128i *)dst, a);
			_mm_stream_si128((__m128i *)(dst + 16), b);
			_mm_stream_si128((__m128i *)(dst + 32), c);
			_mm_stream_si128((__m128i *)(dst + 48), d);
		}
		_mm_sfence(); /* ordered before whatever hands the batch on */
	}
#endif
	memcpy(dst, src, n);
}

int ib_decompress(uint32_t codec, const void *src, size_t stored, void *dst, size_t raw,
		  int stream)
{
	if (codec == IBSTORE_CODEC_NONE) {
		if (stored != raw)
			return IBSTORE_ECORRUPT;
		if (stream)
			copy_payload(dst, src, raw);
		else if (raw)
			memcpy(dst, src, raw);
		return 0;
	}
	if (codec != IBSTORE_CODEC_LZ4 || stored > (size_t)LZ4_MAX_INPUT_SIZE ||
	    raw > (size_t)LZ4_MAX_INPUT_SIZE)
		return IBSTORE_ECORRUPT;
	int n = LZ4_decompress_safe(src, dst, (int)stored, (int)raw);
	if (n < 0 || (size_t)n != raw)
		return IBSTORE_ECORRUPT;
	return 0;
}
