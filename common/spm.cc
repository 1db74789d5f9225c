// spm.cc: the only C++ in libpp; see spm.h for the contract.
#include "spm.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

struct pp_spm {
    sentencepiece::SentencePieceProcessor proc;
    int vocab;
};

extern "C" pp_status pp_spm_load(pp_spm **out, const void *model, size_t n)
{
    *out = nullptr;
    pp_spm *sp = nullptr;
    try {
        sp = new pp_spm;
        auto st = sp->proc.LoadFromSerializedProto(
            absl::string_view(static_cast<const char *>(model), n));
        if (!st.ok()) {
            delete sp;
            return pp_fail(PP_E_DATA, "not a SentencePiece model: %s", st.error_message());
        }
        sp->vocab = sp->proc.GetPieceSize();
        if (sp->vocab <= 0) {
            delete sp;
            return pp_fail(PP_E_DATA, "SentencePiece model has no pieces");
        }
        *out = sp;
        return PP_OK;
    } catch (const std::bad_alloc &) {
        delete sp;
        return pp_fail(PP_E_NOMEM, "out of memory");
    } catch (...) {
        delete sp;
        return pp_fail(PP_E_DATA, "not a SentencePiece model");
    }
}

extern "C" void pp_spm_free(pp_spm *sp) { delete sp; }

extern "C" int pp_spm_vocab_size(const pp_spm *sp) { return sp->vocab; }

extern "C" int pp_spm_bos_id(const pp_spm *sp)
{
    int id = sp->proc.bos_id();
    return id >= 0 && id < sp->vocab ? id : -1;
}

extern "C" int pp_spm_eos_id(const pp_spm *sp)
{
    int id = sp->proc.eos_id();
    return id >= 0 && id < sp->vocab ? id : -1;
}

extern "C" float pp_spm_score(const pp_spm *sp, int id)
{
    if (id < 0 || id >= sp->vocab) return 0;
    try {
        return sp->proc.GetScore(id);
    } catch (...) {
        return 0;
    }
}

extern "C" int pp_spm_is_control(const pp_spm *sp, int id)
{
    if (id < 0 || id >= sp->vocab) return 0;
    try {
        return sp->proc.IsControl(id) ? 1 : 0;
    } catch (...) {
        return 0;
    }
}

extern "C" pp_status pp_spm_encode(const pp_spm *sp, const char *text, size_t n,
                                   uint32_t **ids, size_t *cap, size_t *count)
{
    *count = 0;
    try {
        // Thread-local scratch: no allocation per call once warmed up.
        thread_local std::vector<int> v;
        v.clear();
        auto st = sp->proc.Encode(absl::string_view(text, n), &v);
        if (!st.ok()) return pp_fail(PP_E_DATA, "cannot encode: %s", st.error_message());
        if (v.size() > *cap) {
            size_t c = *cap ? *cap : 64;
            while (c < v.size()) c *= 2;
            void *p = std::realloc(*ids, c * sizeof(uint32_t));
            if (!p) return pp_fail(PP_E_NOMEM, "out of memory");
            *ids = static_cast<uint32_t *>(p);
            *cap = c;
        }
        for (size_t i = 0; i < v.size(); i++) (*ids)[i] = static_cast<uint32_t>(v[i]);
        *count = v.size();
        return PP_OK;
    } catch (const std::bad_alloc &) {
        return pp_fail(PP_E_NOMEM, "out of memory");
    } catch (...) {
        return pp_fail(PP_E_INTERNAL, "sentencepiece failed to encode");
    }
}

extern "C" pp_status pp_spm_decode(const pp_spm *sp, const uint32_t *ids, size_t count,
                                   char **out, size_t *cap, size_t *len)
{
    *len = 0;
    try {
        std::vector<int> v(count);
        for (size_t i = 0; i < count; i++) {
            if (ids[i] >= static_cast<uint32_t>(sp->vocab))
                return pp_fail(PP_E_DATA, "token id %u out of range (vocabulary of %d)", ids[i], sp->vocab);
            v[i] = static_cast<int>(ids[i]);
        }
        std::string s;
        auto st = sp->proc.Decode(v, &s);
        if (!st.ok()) return pp_fail(PP_E_DATA, "cannot decode: %s", st.error_message());
        if (s.size() + 1 > *cap) {
            size_t c = *cap ? *cap : 256;
            while (c < s.size() + 1) c *= 2;
            void *p = std::realloc(*out, c);
            if (!p) return pp_fail(PP_E_NOMEM, "out of memory");
            *out = static_cast<char *>(p);
            *cap = c;
        }
        std::memcpy(*out, s.data(), s.size());
        (*out)[s.size()] = '\0';
        *len = s.size();
        return PP_OK;
    } catch (const std::bad_alloc &) {
        return pp_fail(PP_E_NOMEM, "out of memory");
    } catch (...) {
        return pp_fail(PP_E_INTERNAL, "sentencepiece failed to decode");
    }
}

extern "C" const char *pp_spm_id_to_piece(const pp_spm *sp, int id)
{
    if (id < 0 || id >= sp->vocab) return nullptr;
    try {
        return sp->proc.IdToPiece(id).c_str();
    } catch (...) {
        return nullptr;
    }
}

extern "C" int pp_spm_piece_to_id(const pp_spm *sp, const char *piece)
{
    try {
        int id = sp->proc.PieceToId(piece);
        // PieceToId answers unk_id for an unknown piece: tell the two apart.
        if (id == sp->proc.unk_id() && sp->proc.IdToPiece(id) != piece) return -1;
        return id;
    } catch (...) {
        return -1;
    }
}

// Feeds the trainer one line at a time from a pp_reader (plain, zstd, stdin).
namespace {
class LineIterator : public sentencepiece::SentenceIterator {
  public:
    explicit LineIterator(pp_reader *r) : r_(r) { Next(); }
    bool done() const override { return done_; }
    const std::string &value() const override { return line_; }
    sentencepiece::util::Status status() const override { return status_; }
    void Next() override
    {
        const char *p;
        size_t n;
        pp_status s = pp_read_line(r_, &p, &n);
        if (s != PP_OK) {
            failed = s;
            status_ = sentencepiece::util::Status(sentencepiece::util::StatusCode::kDataLoss,
                                                  pp_errmsg());
            done_ = true;
        } else if (!p) {
            done_ = true;
        } else {
            line_.assign(p, n);
        }
    }
    pp_status failed = PP_OK;

  private:
    pp_reader *r_;
    std::string line_;
    bool done_ = false;
    sentencepiece::util::Status status_;
};
} // namespace

extern "C" pp_status pp_spm_train(pp_reader *corpus, int vocab_size, int threads,
                                  char **model, size_t *n)
{
    *model = nullptr;
    *n = 0;
    try {
        std::unordered_map<std::string, std::string> kw = {
            {"model_type", "bpe"},
            {"vocab_size", std::to_string(vocab_size)},
            {"byte_fallback", "true"},
            {"character_coverage", "1.0"},
            {"split_digits", "true"},
            {"allow_whitespace_only_pieces", "true"},
            {"normalization_rule_name", "identity"},
            {"remove_extra_whitespaces", "false"},
            {"max_sentence_length", "65536"},
            {"num_threads", std::to_string(threads > 0 ? threads : 1)},
            {"unk_id", "0"},
            {"bos_id", "1"},
            {"eos_id", "2"},
            {"pad_id", "-1"},
            {"minloglevel", "2"},
        };
        LineIterator it(corpus);
        std::string proto;
        auto st = sentencepiece::SentencePieceTrainer::Train(kw, &it, &proto);
        if (it.failed != PP_OK) return it.failed;
        if (!st.ok()) return pp_fail(PP_E_DATA, "training failed: %s", st.error_message());
        char *p = static_cast<char *>(std::malloc(proto.size() ? proto.size() : 1));
        if (!p) return pp_fail(PP_E_NOMEM, "out of memory");
        std::memcpy(p, proto.data(), proto.size());
        *model = p;
        *n = proto.size();
        return PP_OK;
    } catch (const std::bad_alloc &) {
        return pp_fail(PP_E_NOMEM, "out of memory");
    } catch (...) {
        return pp_fail(PP_E_INTERNAL, "sentencepiece training failed");
    }
}
