// llama.cpp's own Unicode data and pre-tokenizer, as an oracle for
// tools/gen_unicode.py and tools/make_tokenizer_corpus.py. Linked against the
// libllama.so of llama-cpp-python (which exports these C++ functions):
//
//   g++ -O1 tools/llama_unicode.cpp -L$LIB -lllama -Wl,-rpath,$LIB -o llama_unicode
//   ./llama_unicode flags > flags.bin      # u16 flags of U+0000..U+10FFFF, little-endian
//   ./llama_unicode split FAMILY < hex.txt # per line: code points per pre-token
//
// The expression lists are llama.cpp's (llm_tokenizer_bpe in llama-vocab.cpp),
// keyed by the family names of src/pretokenize.rs.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <string>
#include <vector>

struct cpt_flags { uint16_t v; };
cpt_flags unicode_cpt_flags_from_cpt(uint32_t cpt);
std::vector<std::string> unicode_regex_split(const std::string & text, const std::vector<std::string> & regex_exprs, bool byte_encode);

static const char * GPT2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
static const std::map<std::string, std::vector<std::string>> FAMILIES = {
    {"gpt2", {GPT2}},
    {"default", {"[\\p{P}\\$\\+<=>\\^~\\|]+", GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}},
    {"llama3", {"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
    {"starcoder", {"\\p{N}", GPT2}},
    {"qwen2", {"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
    {"deepseek-llm", {
        "[\r\n]",
        "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+",
        "\\s?[!-/:-~！-／：-～‘-‟　-。]+",
        "\\s+$",
        "[一-龥ࠀ-一가-퟿]+",
        "\\p{N}+",
    }},
    {"deepseek-v3", {
        "\\p{N}{1,3}",
        "[一-龥぀-ゟ゠-ヿ]+",
        "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
    }},
    {"deepseek-coder", {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[一-龥ࠀ-一가-퟿]+", "\\p{N}"}},
    {"falcon", {"[\\p{P}\\$\\+<=>\\^~\\|`]+", GPT2, "[0-9][0-9][0-9]"}},
    {"tekken", {"[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
};

int main(int argc, char ** argv) {
    if (argc == 2 && !strcmp(argv[1], "flags")) {
        for (uint32_t c = 0; c < 0x110000; c++) {
            uint16_t v = unicode_cpt_flags_from_cpt(c).v;
            uint8_t le[2] = {(uint8_t)(v & 0xFF), (uint8_t)(v >> 8)};
            fwrite(le, 1, 2, stdout);
        }
        return 0;
    }
    if (argc != 3 || strcmp(argv[1], "split") || !FAMILIES.count(argv[2])) {
        fprintf(stderr, "usage: llama_unicode flags | split FAMILY\n");
        return 2;
    }
    const auto & exprs = FAMILIES.at(argv[2]);
    std::string line;
    while (std::getline(std::cin, line)) {
        std::string text;
        for (size_t i = 0; i + 1 < line.size(); i += 2) text += (char)std::stoi(line.substr(i, 2), nullptr, 16);
        auto words = unicode_regex_split(text, exprs, false);
        std::string out;
        for (const auto & w : words) {
            size_t n = 0;
            for (unsigned char c : w) n += (c & 0xC0) != 0x80;
            if (!out.empty()) out += ' ';
            out += std::to_string(n);
        }
        printf("%s\n", out.c_str());
    }
    return 0;
}
