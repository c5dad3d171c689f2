/*
 * zck-delta: the device side of SWUpdate's delta handler (handlers/delta_handler.c in
 * sbabic/swupdate), rebuilt on the same libraries for bench/delta-peers.sh, so that zchunk is charged
 * for what that handler does on a device and for nothing else.
 *
 *     zck-delta SOURCE HEADER_URL ZCK_URL TARGET [MAX_RANGES]
 *
 * Steps, in the handler's order:
 *   1. the target's zchunk header (the `.zckheader` meta-swupdate puts in the SWU; here fetched from
 *      HEADER_URL into a memfd) is read with zck_init_read;
 *   2. SOURCE (the device's running image) is indexed as the handler does: a zck write context with
 *      ZCK_UNCOMP_HEADER, ZCK_COMP_NONE and sha256 chunk hashes, fed 16 KiB reads, written to
 *      /dev/null (libzck 1.2.3 has no ZCK_NO_WRITE: it keeps its own temporary copy of the chunk
 *      data, which the handler warns about); then zck_generate_hashdb and zck_find_matching_chunks;
 *   3. the target's chunks are written to TARGET in order: a chunk the source holds is read from
 *      SOURCE and its uncompressed sha256 checked; missing chunks are fetched from ZCK_URL (zck_get_chunk_start is the offset in the file, header included) with
 *      multi-range requests of at most MAX_RANGES ranges (the handler's default: 150), each chunk's
 *      sha256 checked and decompressed with zstd (chunks are independent zstd frames);
 *   4. TARGET is synced (the chained raw handler writes every block; nothing is skipped).
 *
 * Prints "reused BYTES downloaded_chunks BYTES requests N" on stdout. Exit 1 on any error.
 * It does not do the handler's privilege separation, SWU parsing or signature check.
 *
 * Build: cc -O2 -o zck-delta zck-delta.c $(pkg-config --cflags --libs zck libcurl libzstd libcrypto)
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zck.h>
#include <zstd.h>

#define READ_SIZE 16384 /* the handler's BUFF_SIZE */
#define DEFAULT_MAX_RANGES 150 /* the handler's DEFAULT_MAX_RANGES */

static void die(const char *what, const char *detail)
{
	fprintf(stderr, "zck-delta: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
	exit(1);
}

struct buf {
	char *data;
	size_t len, cap;
};

static size_t collect(void *ptr, size_t size, size_t n, void *userdata)
{
	struct buf *b = userdata;
	size_t len = size * n;
	if (b->len + len > b->cap) {
		b->cap = (b->len + len) * 2;
		b->data = realloc(b->data, b->cap);
		if (!b->data)
			die("out of memory", NULL);
	}
	memcpy(b->data + b->len, ptr, len);
	b->len += len;
	return len;
}

static CURL *curl;
static long requests;

/* GET url (with an optional Range) into out; the response's Content-Type into ctype. */
static void get(const char *url, const char *range, struct buf *out, struct buf *headers)
{
	long status = 0;
	out->len = 0;
	headers->len = 0;
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_RANGE, range);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, collect);
	curl_easy_setopt(curl, CURLOPT_HEADERDATA, headers);
	CURLcode rc = curl_easy_perform(curl);
	if (rc != CURLE_OK)
		die("download failed", curl_easy_strerror(rc));
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	if (status != (range ? 206 : 200))
		die("unexpected HTTP status", url);
	requests++;
}

/* Lowercase hex sha256 of data, compared with the zck digest string. */
static void check_sha256(const char *data, size_t len, char *expected, long chunk)
{
	unsigned char md[32];
	char hex[65];
	unsigned int mdlen = 0;
	if (!expected)
		die("no digest for a chunk", NULL);
	if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL))
		die("sha256 failed", NULL);
	for (int i = 0; i < 32; i++)
		sprintf(hex + 2 * i, "%02x", md[i]);
	if (strcmp(hex, expected) != 0) {
		fprintf(stderr, "zck-delta: chunk %ld: sha256 %s, expected %s\n", chunk, hex, expected);
		exit(1);
	}
	free(expected);
}

static void write_all(int fd, const char *data, size_t len)
{
	while (len) {
		ssize_t n = write(fd, data, len);
		if (n < 0)
			die("write to the target failed", strerror(errno));
		data += n;
		len -= (size_t)n;
	}
}

int main(int argc, char **argv)
{
	if (argc < 5 || argc > 6)
		die("usage: zck-delta SOURCE HEADER_URL ZCK_URL TARGET [MAX_RANGES]", NULL);
	const char *source = argv[1], *header_url = argv[2], *zck_url = argv[3], *target = argv[4];
	int max_ranges = argc == 6 ? atoi(argv[5]) : DEFAULT_MAX_RANGES;
	if (max_ranges < 1)
		die("MAX_RANGES must be at least 1", NULL);

	curl_global_init(CURL_GLOBAL_DEFAULT);
	curl = curl_easy_init();
	struct buf body = {0}, headers = {0};

	/* 1. The target's header, as the handler reads it from the SWU: into a memfd. */
	get(header_url, NULL, &body, &headers);
	int mem_fd = memfd_create("zchunk header", 0);
	if (mem_fd < 0)
		die("memfd_create", strerror(errno));
	write_all(mem_fd, body.data, body.len);
	lseek(mem_fd, 0, SEEK_SET);
	zckCtx *dst = zck_create();
	if (!dst || !zck_init_read(dst, mem_fd))
		die("cannot read the zchunk header", zck_get_error(dst));

	/* 2. The source index, made the handler's way. */
	int src_fd = open(source, O_RDONLY);
	int null_fd = open("/dev/null", O_WRONLY);
	if (src_fd < 0 || null_fd < 0)
		die("cannot open the source", source);
	zckCtx *src = zck_create();
	if (!src || !zck_init_write(src, null_fd))
		die("cannot start the source index", zck_get_error(src));
	if (!zck_set_ioption(src, ZCK_UNCOMP_HEADER, 1) || !zck_set_ioption(src, ZCK_COMP_TYPE, ZCK_COMP_NONE) ||
	    !zck_set_ioption(src, ZCK_HASH_CHUNK_TYPE, ZCK_HASH_SHA256))
		die("cannot set the source index options", zck_get_error(src));
	char *rbuf = malloc(READ_SIZE);
	ssize_t n;
	while ((n = read(src_fd, rbuf, READ_SIZE)) > 0)
		if (zck_write(src, rbuf, (size_t)n) < 0)
			die("zck_write", zck_get_error(src));
	if (n < 0 || zck_end_chunk(src) < 0)
		die("cannot index the source", zck_get_error(src));
	free(rbuf);
	if (!zck_generate_hashdb(src) || !zck_find_matching_chunks(src, dst))
		die("cannot match the chunks", zck_get_error(dst));

	/* 3. Every target chunk in order, into TARGET. */
	int out_fd = open(target, O_WRONLY);
	if (out_fd < 0)
		die("cannot open the target", target);
	size_t reused = 0, fetched = 0, cap = 0;
	char *chunk_buf = NULL, *plain = NULL;
	zckChunk *c = zck_get_first_chunk(dst);
	while (c) {
		if (zck_get_chunk_valid(c) == 1) { /* from the source */
			zckChunk *s = zck_get_src_chunk(c);
			size_t len = (size_t)zck_get_chunk_size(s);
			if (len) {
				if (len > cap && !(chunk_buf = realloc(chunk_buf, cap = len)))
					die("out of memory", NULL);
				if (pread(src_fd, chunk_buf, len, zck_get_chunk_start(s)) != (ssize_t)len)
					die("short read from the source", source);
				check_sha256(chunk_buf, len, zck_get_chunk_digest_uncompressed(s), zck_get_chunk_number(c));
				write_all(out_fd, chunk_buf, len);
				reused += len;
			}
			c = zck_get_next_chunk(c);
			continue;
		}
		/* Missing: one request for the next missing chunks, up to max_ranges ranges (adjacent
		 * chunks share a range), as the handler's zchunk_get_missing_range does. */
		char *range = malloc(32 * (size_t)max_ranges + 16);
		size_t rlen = 0;
		int nranges = 0;
		zckChunk *last = NULL, *end = c;
		ssize_t run_start = -1, run_end = -1;
		for (zckChunk *i = c; i; i = zck_get_next_chunk(i)) {
			if (zck_get_chunk_valid(i) == 1)
				continue;
			ssize_t st = zck_get_chunk_start(i);
			ssize_t en = st + zck_get_chunk_comp_size(i) - 1;
			if (zck_get_chunk_comp_size(i) == 0)
				continue;
			if (run_start >= 0 && st == run_end + 1) {
				run_end = en;
			} else {
				if (nranges == max_ranges)
					break;
				if (run_start >= 0)
					rlen += (size_t)sprintf(range + rlen, "%zd-%zd,", run_start, run_end);
				run_start = st;
				run_end = en;
				nranges++;
			}
			last = i;
		}
		if (!last)
			die("a missing chunk without data", NULL);
		sprintf(range + rlen, "%zd-%zd", run_start, run_end);
		get(zck_url, range, &body, &headers);
		free(range);
		/* The parts come in the order asked; a single range is the bare body. */
		bool multipart = nranges > 1;
		char *pos = body.data, *limit = body.data + body.len;
		ssize_t prev_end = -2;
		for (end = c;; end = zck_get_next_chunk(end)) {
			if (zck_get_chunk_valid(end) == 1) {
				zckChunk *s = zck_get_src_chunk(end);
				size_t len = (size_t)zck_get_chunk_size(s);
				if (len) {
					if (len > cap && !(chunk_buf = realloc(chunk_buf, cap = len)))
						die("out of memory", NULL);
					if (pread(src_fd, chunk_buf, len, zck_get_chunk_start(s)) != (ssize_t)len)
						die("short read from the source", source);
					check_sha256(chunk_buf, len, zck_get_chunk_digest_uncompressed(s),
						     zck_get_chunk_number(end));
					write_all(out_fd, chunk_buf, len);
					reused += len;
				}
			} else if (zck_get_chunk_comp_size(end) > 0) {
				size_t clen = (size_t)zck_get_chunk_comp_size(end);
				size_t ulen = (size_t)zck_get_chunk_size(end);
				ssize_t st = zck_get_chunk_start(end);
				if (multipart && st != prev_end + 1) { /* a new part: skip its headers */
					char *hdr_end = memmem(pos, (size_t)(limit - pos), "\r\n\r\n", 4);
					if (!hdr_end)
						die("malformed multipart response", NULL);
					pos = hdr_end + 4;
				}
				prev_end = st + (ssize_t)clen - 1;
				if ((size_t)(limit - pos) < clen)
					die("short range response", NULL);
				check_sha256(pos, clen, zck_get_chunk_digest(end), zck_get_chunk_number(end));
				if (!(plain = realloc(plain, ulen ? ulen : 1)))
					die("out of memory", NULL);
				size_t got = ZSTD_decompress(plain, ulen, pos, clen);
				if (ZSTD_isError(got) || got != ulen)
					die("zstd", ZSTD_isError(got) ? ZSTD_getErrorName(got) : "wrong size");
				write_all(out_fd, plain, ulen);
				fetched += clen;
				pos += clen;
			}
			if (end == last)
				break;
		}
		c = zck_get_next_chunk(last);
	}
	if (fsync(out_fd) < 0)
		die("fsync of the target failed", strerror(errno));
	close(out_fd);
	printf("reused %zu downloaded_chunks %zu requests %ld\n", reused, fetched, requests);
	zck_free(&src);
	zck_free(&dst);
	curl_easy_cleanup(curl);
	return 0;
}
