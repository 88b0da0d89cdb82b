/*
 * prep_read.h - the read stage of prep: which files, cut into which work units, and the
 * records (documents) inside them. No MPI. Private to prep/ (the public header is prep.h).
 *
 * Formats (recognised by name, checked by content):
 *   .jsonl / .json            one JSON object per line (plain: may be cut into byte ranges)
 *   .jsonl.zst, .jsonl.gz, .jsonl.xz, .jsonl.bz2   the same, compressed (libarchive's raw
 *                             format; filters gzip, bzip2, xz, lzma, zstd, told apart by content;
 *                             a file so named whose content is not compressed, or of 0 bytes,
 *                             is CORRUPT)
 *   .tar .tar.gz .tgz .tar.zst .tzst .tar.xz .txz .tar.bz2 .tbz2 .tbz .zip .7z
 *                             archives (libarchive, the same filters): a regular member named
 *                             like a (compressed) jsonl file above gives one record per line (a
 *                             compressed member is decompressed as a stream by a second
 *                             libarchive reader fed from the first, in constant memory); any
 *                             other regular member is one plain-text document (archives inside
 *                             archives are not opened); directories, symbolic and hard links and
 *                             devices in archives are skipped
 *   anything else             one plain-text document per file
 *   a directory               every regular file below it, in byte order of path, by the rules
 *                             above (hidden files included; symlinks to files followed, symlinks
 *                             to directories not followed, dangling links ignored)
 * Names are matched without regard to case.
 *
 * jsonl rules: a line is one record, numbered (ordinal) from 0 in its unit. Lines holding only
 * JSON whitespace (space, tab, CR, LF) are skipped and are NOT records: they take no ordinal and
 * are never rejected (except one longer than max_doc_bytes: TOO_LONG, as it is not held to be
 * looked at). A UTF-8 BOM at stream offset 0 is ignored. JSON is parsed strictly as RFC 8259
 * (json-c JSON_TOKENER_STRICT: no single quotes, no trailing commas, nothing after the object
 * but whitespace; and checked here: no raw control characters in strings, no NaN/Infinity, no
 * leading zeros). A line with a raw NUL byte is JSON (never valid); a text holding "\u0000" is
 * BINARY. Plain lines are read by a single-pass parser that hands every line it is not sure of
 * to json-c, so the records are the same as json-c's (prep_read.c, "the fast path").
 * Order of the checks: JSON, FIELD, DOMAIN, BINARY, EMPTY, TOO_LONG, UTF8 (text, then domain).
 * EMPTY means zero bytes of text (whitespace-only text is a document). A plain-text document
 * (offset 0) is checked for BINARY (a NUL byte), EMPTY, TOO_LONG and UTF8.
 *
 * Streaming: memory does not grow with file size or line length; it is bounded by about
 * max_doc_bytes (one line or document) plus a block. A record longer than max_doc_bytes (the
 * jsonl line, the document, or the text after U+FFFD replacement) is read past in blocks (not
 * held) and rejected as PREP_REJECT_TOO_LONG with its offset.
 */
#ifndef LONGCTX_PREP_READ_H
#define LONGCTX_PREP_READ_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    PREP_READ_DONE = 1, /* no more records in the unit */
    PREP_READ_OK = 0,
    PREP_READ_ERR_IO = -1, /* the file cannot be opened or read */
    PREP_READ_ERR_NOMEM = -2,
    PREP_READ_ERR_CORRUPT = -3, /* damaged or truncated compressed stream or archive: the rest
                                   of the unit is lost; the caller counts it and goes on */
    PREP_READ_ERR_ARG = -4,
} prep_read_status;

typedef enum {
    PREP_FMT_JSONL = 1,      /* plain jsonl: can be cut into byte ranges */
    PREP_FMT_JSONL_COMP = 2, /* compressed jsonl (zst, gz, xz, bz2) */
    PREP_FMT_ARCHIVE = 3,    /* tar/zip/7z, possibly compressed */
    PREP_FMT_TEXT = 4,       /* the whole file is one document */
} prep_format;

/* Why a record is not a document. Every reject is counted by reason and file. */
typedef enum {
    PREP_REJECT_NONE = 0,
    PREP_REJECT_JSON = 1,      /* not a JSON object */
    PREP_REJECT_FIELD = 2,     /* no string at the text path */
    PREP_REJECT_DOMAIN = 3,    /* no string at the domain path */
    PREP_REJECT_UTF8 = 4,      /* invalid UTF-8 under the reject policy */
    PREP_REJECT_TOO_LONG = 5,  /* longer than max_doc_bytes */
    PREP_REJECT_EMPTY = 6,     /* empty text */
    PREP_REJECT_BINARY = 7,    /* a text document holding NUL bytes */
    PREP_REJECT_TRUNCATED = 8, /* the stream ended in the middle (set by the caller on
                                  PREP_READ_ERR_CORRUPT: one count per damaged unit) */
    PREP_REJECT_N = 9
} prep_reject;

const char *prep_reject_name(prep_reject r); /* "json", "field", ... (static) */
const char *prep_read_strerror(int status);  /* static string, never NULL */

typedef enum {
    PREP_UTF8_REPLACE = 0, /* each invalid byte becomes U+FFFD (what sentencepiece does) */
    PREP_UTF8_REJECT = 1,
} prep_utf8_policy;

/*! prep_format_from_name() : the format a file (or an archive member) has by its name, by the
 *  rules above; case does not matter. */
prep_format prep_format_from_name(const char *name);

/*! prep_name_is_compressed() : 1 if the name ends like a compressed file (.gz .tgz .zst .tzst
 *  .xz .txz .bz2 .tbz2 .tbz, any case): such a file of 0 bytes is truncated (CORRUPT), as
 *  zstd -t, gzip -t, xz -t and bzip2 -t say, not empty. */
int prep_name_is_compressed(const char *name);

/* One input file. */
typedef struct {
    char *path;
    uint64_t bytes;
    prep_format format;
    /* A .zst file of several frames (set by prep_inputs_find_frames): the compressed and the
     * decompressed offset of each zstd frame, in file order (skippable frames are not listed).
     * NULL and 0 otherwise. */
    uint64_t *frames; /* (n_frames, 2) */
    size_t n_frames;
} prep_input;

/* A work unit: a whole file, or a byte range of a plain jsonl file, or a run of frames of a
 * .zst file. A range owns the records (lines) that START inside [begin, end): if begin > 0 its
 * first line starts just after the first '\n' at or after offset begin - 1; its last line is
 * the one starting before end, and may run past end. So for any cut, every line belongs to
 * exactly one unit. For frames, begin and end are where frames start in the file (or end is
 * the file's size), and the rule applies to the decompressed offsets of those frame starts (a
 * line may cross frames). A whole-file unit is [0, bytes): a file that grew since the scan is
 * read up to that size. */
typedef struct {
    uint32_t input;
    uint64_t begin, end;
} prep_unit;

typedef struct {
    const char *text_path;   /* dot-separated JSON path of the text ("text"); jsonl only */
    const char *domain_path; /* dot-separated JSON path of the domain, NULL or "" if none */
    prep_utf8_policy utf8;
    uint64_t max_doc_bytes; /* default 64 MiB; at most 2^31 - 4097 (json-c string limit) */
    uint64_t block_bytes;   /* bytes per read, default 1 MiB (tests use tiny blocks); 0: default */
    int json_c_only;        /* tests: every jsonl line through json-c, the reference for the fast
                               path (default 0: the fast path decides the lines it is sure of) */
} prep_read_opts;

prep_read_opts prep_read_opts_default(void);

/*! prep_inputs_scan() :
 *  Expands paths (directories recursively), classifies each file, and returns them sorted by
 *  path bytes (strcmp, so the order never depends on the file system); a file reached twice is
 *  listed once. *out is malloc'd (never NULL on success, even for no files); free it with
 *  prep_inputs_free. @return PREP_READ_OK, PREP_READ_ERR_IO (a path that does not exist, is
 *  not a file or directory, or a directory that cannot be read: named in err),
 *  PREP_READ_ERR_NOMEM, PREP_READ_ERR_ARG. */
int prep_inputs_scan(char *const *paths, int n_paths, prep_input **out, size_t *n_out, char *err,
                     size_t err_bytes);
void prep_inputs_free(prep_input *in, size_t n);

/*! prep_inputs_find_frames() :
 *  For each compressed jsonl input larger than min_bytes that is a zstd stream of two or more
 *  frames, all with their content size in the frame header: fills in->frames, so that
 *  prep_units_make can cut the file at frame starts (one large file feeds many ranks). Walks
 *  frame and block headers only (a few bytes per 128 KiB block); nothing is decompressed. A
 *  file that cannot be walked (not zstd, a frame without content size, damage, a read error)
 *  is left whole: its reading reports any damage as before. Depends only on the files' bytes.
 *  @return PREP_READ_OK, PREP_READ_ERR_NOMEM. */
int prep_inputs_find_frames(prep_input *in, size_t n_in, uint64_t min_bytes, char *err,
                            size_t err_bytes);

/*! prep_units_make() :
 *  One unit per file, except plain jsonl files larger than unit_bytes, which are cut into
 *  ranges of unit_bytes (the last one shorter), and .zst files with frames (in->frames), cut
 *  at the first frame start at or past each multiple of unit_bytes from the unit's start. A
 *  single-frame file stays whole. Depends only on the inputs and unit_bytes.
 *  *out is malloc'd (never NULL on success); free() it. @return PREP_READ_OK,
 *  PREP_READ_ERR_ARG (unit_bytes 0), PREP_READ_ERR_NOMEM. */
int prep_units_make(const prep_input *in, size_t n_in, uint64_t unit_bytes, prep_unit **out,
                    size_t *n_out);

typedef struct prep_reader prep_reader;

/* One record. Pointers are borrowed: valid until the next call on the reader. */
typedef struct {
    uint64_t ordinal;   /* record number inside the unit, from 0, rejects included */
    uint64_t offset;    /* byte offset of the record: in the file (plain), in the
                           decompressed stream (compressed jsonl), in the member (archive) */
    const char *member; /* archive member name, NULL outside archives */
    const char *text;   /* the document text (UTF-8, policy applied, text[n_text] == '\0');
                           NULL if rejected */
    size_t n_text;
    const char *domain; /* the string at domain_path, NULL if none configured */
    size_t n_domain;
    prep_reject reject;
    const char *detail; /* for a reject: what was wrong ("expected ':' at column 14") */
} prep_record;

/*! prep_reader_open() : opens unit u of input in (the reader copies what it needs of in, u and
 *  opts). It only opens the file: damaged content shows at prep_reader_next. @return
 *  PREP_READ_OK, PREP_READ_ERR_IO (cannot open: errmsg names the file), PREP_READ_ERR_ARG (bad
 *  options, or a range unit of a file that is not plain jsonl), PREP_READ_ERR_NOMEM. On error
 *  *out holds the message (or NULL); free it either way. */
int prep_reader_open(const prep_input *in, const prep_unit *u, const prep_read_opts *opts,
                     prep_reader **out);
/*! prep_reader_next() : the next record. @return PREP_READ_OK (rec filled; check rec->reject),
 *  PREP_READ_DONE, or an error (errmsg names file, member and offset): PREP_READ_ERR_CORRUPT for
 *  a damaged or truncated stream or archive (the records before the damage have been returned
 *  first; libarchive's filters drop the last partial output block, up to 128 KiB of decompressed
 *  data, before the damage), PREP_READ_ERR_IO, PREP_READ_ERR_NOMEM. DONE and errors are
 *  sticky. */
int prep_reader_next(prep_reader *r, prep_record *rec);
const char *prep_reader_errmsg(const prep_reader *r);
void prep_reader_free(prep_reader *r); /* NULL ok */

/* Formats a message into buf[0, n) (nothing when buf is NULL or n is 0): the read stage's
 * (prep_inputs.c, prep_read.c) one error-detail writer. */
void prep_read_errf(char *buf, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
