// A small C face over libsentencepiece, so Swift can load and run `tokenizer.model` files.
#ifndef CSENTENCEPIECE_H
#define CSENTENCEPIECE_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

typedef struct spm_processor spm_processor;

/// Loads a serialized ModelProto. On failure returns NULL and writes a message into `error`.
spm_processor *spm_load_bytes(const char *data, size_t length, char *error, size_t error_capacity);
void spm_free(spm_processor *processor);

int32_t spm_vocab_size(const spm_processor *processor);
/// Writes up to `capacity` ids; returns the number of ids the text needs (may exceed capacity), or -1.
int32_t spm_encode(const spm_processor *processor, const char *text, size_t length, int32_t *ids, int32_t capacity);
/// Like spm_encode, and also writes the UTF-8 byte range [begin, end) of the input each piece covers.
int32_t spm_encode_spans(const spm_processor *processor, const char *text, size_t length, int32_t *ids,
                         uint32_t *begins, uint32_t *ends, int32_t capacity);
/// Writes up to `capacity` bytes (no terminator); returns the number of bytes needed, or -1.
int64_t spm_decode(const spm_processor *processor, const int32_t *ids, int32_t count, char *out, int64_t capacity);
/// Copies the piece of `id` into `out`; returns its byte length.
int32_t spm_id_to_piece(const spm_processor *processor, int32_t id, char *out, int32_t capacity);
int32_t spm_piece_to_id(const spm_processor *processor, const char *piece, size_t length);
float spm_score(const spm_processor *processor, int32_t id);
int32_t spm_is_control(const spm_processor *processor, int32_t id);
int32_t spm_is_unknown(const spm_processor *processor, int32_t id);
int32_t spm_is_byte(const spm_processor *processor, int32_t id);
int32_t spm_is_unused(const spm_processor *processor, int32_t id);
int32_t spm_bos_id(const spm_processor *processor);
int32_t spm_eos_id(const spm_processor *processor);
int32_t spm_unk_id(const spm_processor *processor);
int32_t spm_pad_id(const spm_processor *processor);

#ifdef __cplusplus
}
#endif
#endif
