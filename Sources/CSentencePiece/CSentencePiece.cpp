#include "CSentencePiece.h"
#include <sentencepiece_processor.h>
#include <cstring>
#include <string>
#include <vector>

struct spm_processor {
    sentencepiece::SentencePieceProcessor sp;
};

static void write_error(const std::string &message, char *error, size_t capacity) {
    if (!error || capacity == 0) return;
    size_t n = message.size() < capacity - 1 ? message.size() : capacity - 1;
    std::memcpy(error, message.data(), n);
    error[n] = 0;
}

spm_processor *spm_load_bytes(const char *data, size_t length, char *error, size_t error_capacity) {
    auto *p = new spm_processor();
    auto status = p->sp.LoadFromSerializedProto(std::string(data, length));
    if (!status.ok()) {
        write_error(status.ToString(), error, error_capacity);
        delete p;
        return nullptr;
    }
    return p;
}

void spm_free(spm_processor *p) { delete p; }

int32_t spm_vocab_size(const spm_processor *p) { return p->sp.GetPieceSize(); }

int32_t spm_encode(const spm_processor *p, const char *text, size_t length, int32_t *ids, int32_t capacity) {
    std::vector<int> out;
    auto status = p->sp.Encode(std::string(text, length), &out);
    if (!status.ok()) return -1;
    for (size_t i = 0; i < out.size() && (int32_t)i < capacity; i++) ids[i] = out[i];
    return (int32_t)out.size();
}

int32_t spm_encode_spans(const spm_processor *p, const char *text, size_t length, int32_t *ids,
                         uint32_t *begins, uint32_t *ends, int32_t capacity) {
    const auto spt = p->sp.EncodeAsImmutableProto(absl::string_view(text, length));
    const int n = spt.pieces_size();
    for (int i = 0; i < n && i < capacity; i++) {
        const auto piece = spt.pieces(i);
        ids[i] = (int32_t)piece.id();
        begins[i] = piece.begin();
        ends[i] = piece.end();
    }
    return (int32_t)n;
}

int64_t spm_decode(const spm_processor *p, const int32_t *ids, int32_t count, char *out, int64_t capacity) {
    std::vector<int> in(ids, ids + count);
    std::string text;
    auto status = p->sp.Decode(in, &text);
    if (!status.ok()) return -1;
    int64_t n = (int64_t)text.size() < capacity ? (int64_t)text.size() : capacity;
    if (n > 0) std::memcpy(out, text.data(), (size_t)n);
    return (int64_t)text.size();
}

int32_t spm_id_to_piece(const spm_processor *p, int32_t id, char *out, int32_t capacity) {
    if (id < 0 || id >= p->sp.GetPieceSize()) return -1;
    const std::string &piece = p->sp.IdToPiece(id);
    int32_t n = (int32_t)piece.size() < capacity ? (int32_t)piece.size() : capacity;
    if (n > 0) std::memcpy(out, piece.data(), (size_t)n);
    return (int32_t)piece.size();
}

int32_t spm_piece_to_id(const spm_processor *p, const char *piece, size_t length) {
    return p->sp.PieceToId(std::string(piece, length));
}

float spm_score(const spm_processor *p, int32_t id) { return p->sp.GetScore(id); }
int32_t spm_is_control(const spm_processor *p, int32_t id) { return p->sp.IsControl(id); }
int32_t spm_is_unknown(const spm_processor *p, int32_t id) { return p->sp.IsUnknown(id); }
int32_t spm_is_byte(const spm_processor *p, int32_t id) { return p->sp.IsByte(id); }
int32_t spm_is_unused(const spm_processor *p, int32_t id) { return p->sp.IsUnused(id); }
int32_t spm_bos_id(const spm_processor *p) { return p->sp.bos_id(); }
int32_t spm_eos_id(const spm_processor *p) { return p->sp.eos_id(); }
int32_t spm_unk_id(const spm_processor *p) { return p->sp.unk_id(); }
int32_t spm_pad_id(const spm_processor *p) { return p->sp.pad_id(); }
