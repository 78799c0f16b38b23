/*
 * chat_template.h: turning a conversation (role + content messages) into the
 * prompt text a chat model was trained on. The formats are built in; none is
 * interpreted from Jinja. chat_template_detect() picks one from the text of a
 * model's `tokenizer.chat_template` metadata by its characteristic markers,
 * chat_template_from_name() from a short name given by the user.
 *
 * The output of each format matches llama.cpp's built-in templates
 * (llama_chat_apply_template), so prompts are interchangeable with it.
 *
 * BOS: no format writes the model's BOS at the start of the text. Encode the
 * result with tokenizer_encode(..., add_special = true, parse_special = true):
 * the tokenizer adds BOS when the model asks for it (tokenizer.ggml.add_bos_token)
 * and turns the control tokens written in the text ("<|im_start|>", "[INST]",
 * "</s>", ...) into their ids. Do not also prepend bos_text yourself, or BOS
 * appears twice. Only llama2-sys-bos writes bos_text, and only before each
 * later "[INST]" (never at the start), as the model's own template does.
 * EOS: the Llama 2 and Mistral formats close every assistant turn with
 * eos_text; the others close turns with their own end-of-turn markers.
 */
#ifndef PAGODA_TOKENIZER_CHAT_TEMPLATE_H
#define PAGODA_TOKENIZER_CHAT_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

/* One turn. role is "system", "user" or "assistant"; content is any bytes up
 * to its NUL (empty is allowed) and is copied as is, except where a format
 * trims surrounding whitespace as its model's template does (llama3, llama4,
 * gemma, llama2-sys-strip, the assistant turns of mistral-v3). */
struct chat_message {
    const char *role;
    const char *content;
};

enum chat_template_kind {
    /* <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|> (Llama 3.x) */
    CHAT_TEMPLATE_LLAMA3,
    /* <|header_start|>role<|header_end|>\n\ncontent<|eot|> (Llama 4) */
    CHAT_TEMPLATE_LLAMA4,
    /* <|im_start|>role\ncontent<|im_end|>\n (Qwen, Qwen2, Yi, Hermes, ...).
     * No default system prompt is added when none is given. */
    CHAT_TEMPLATE_CHATML,
    /* [INST] user [/INST]assistant</s>: Llama 2 without <<SYS>>, which is also
     * the format of Mistral-7B-Instruct v0.1/v0.2. A system message is written
     * as plain text plus "\n" inside the first [INST]. */
    CHAT_TEMPLATE_LLAMA2,
    /* Llama 2 with the system message in <<SYS>>\n...\n<</SYS>>\n\n. */
    CHAT_TEMPLATE_LLAMA2_SYS,
    /* as LLAMA2_SYS, and every later turn starts with bos_text + "[INST] ". */
    CHAT_TEMPLATE_LLAMA2_SYS_BOS,
    /* as LLAMA2_SYS, with every content trimmed (Meta's llama-2-chat). */
    CHAT_TEMPLATE_LLAMA2_SYS_STRIP,
    /* Mistral's official tokenizer versions: " [INST] x [/INST] y</s>" (v1),
     * "[INST] x[/INST] y</s>" (v3), "[INST]x[/INST]y</s>" (v3-tekken).
     * A system message goes into the next [INST] followed by "\n\n". */
    CHAT_TEMPLATE_MISTRAL_V1,
    CHAT_TEMPLATE_MISTRAL_V3,
    CHAT_TEMPLATE_MISTRAL_V3_TEKKEN,
    /* [SYSTEM_PROMPT] s[/SYSTEM_PROMPT][INST] x[/INST] y</s> (Mistral Small 3). */
    CHAT_TEMPLATE_MISTRAL_V7,
    /* as MISTRAL_V7 without the spaces after [SYSTEM_PROMPT], [INST] and
     * before the answer (Mistral Small 3.1); chosen by name only. */
    CHAT_TEMPLATE_MISTRAL_V7_TEKKEN,
    /* <start_of_turn>user\ncontent<end_of_turn>\n, "model" for the assistant;
     * a system message is folded into the first user turn. */
    CHAT_TEMPLATE_GEMMA,
    /* <|role|>\ncontent<|endoftext|>\n (StableLM Zephyr). */
    CHAT_TEMPLATE_ZEPHYR,
    /* <|role|>\ncontent<|end|>\n (Phi-3). */
    CHAT_TEMPLATE_PHI3,
    CHAT_TEMPLATE_COUNT_
};

/* Looks up a format by name: its chat_template_name() or an alias ("qwen",
 * "qwen2", "qwen2.5", "yi", "hermes" = chatml; "llama-3", "llama3.1",
 * "llama3.2" = llama3; "llama-2" = llama2; "mistral" = llama2, as llama.cpp
 * reads that name; "gemma2", "gemma-2" = gemma; "phi-3" = phi3). Case-sensitive.
 * Returns 0, or PAGODA_EINVAL for NULL arguments and PAGODA_EUNSUPPORTED for
 * an unknown name. */
int chat_template_from_name(const char *name, enum chat_template_kind *out);

/* Recognises the format of a Jinja chat template (len bytes, need not be
 * NUL-terminated) by its markers, in llama.cpp's order: "<|im_start|>" ->
 * chatml; "[INST]" -> a Mistral or Llama 2 variant (decided by
 * "[SYSTEM_PROMPT]", "[AVAILABLE_TOOLS]", "<<SYS>>", "content.strip()", ...);
 * "<|assistant|>" with "<|end|>" -> phi3; "<|user|>" with "<|endoftext|>" ->
 * zephyr; "<start_of_turn>" -> gemma; "<|start_header_id|>" with
 * "<|end_header_id|>" -> llama3; "<|header_start|>" with "<|header_end|>" ->
 * llama4. A template with "[INST]" but no <<SYS>> and none of Mistral's
 * official markers is the plain llama2 format (Mistral-7B-Instruct v0.1/v0.2
 * use it). A bare format name (as chat_template_from_name) is accepted
 * too. Returns 0; PAGODA_EUNSUPPORTED with a message naming what
 * was seen (a known but unsupported family, or the template's first bytes)
 * when nothing matches; PAGODA_EINVAL for NULL arguments. */
int chat_template_detect(const char *jinja_text, size_t len, enum chat_template_kind *out,
                         char *err, size_t errlen);

/* The format's short name ("llama3", "chatml", "mistral-v3", ...), a static
 * string; "unknown" for a value out of range. */
const char *chat_template_name(enum chat_template_kind k);

/* Writes the prompt for n messages into *out: a NUL-terminated malloc'd
 * string the caller frees, *out_len bytes long (without the NUL).
 * add_generation_prompt appends the opening of an assistant turn where the
 * format has one; in the Llama 2 and Mistral formats a user turn already ends
 * with "[/INST]", so it changes nothing there. bos_text/eos_text are the
 * model's BOS and EOS token texts; NULL means "<s>" and "</s>".
 * Checks, each failing with PAGODA_EINVAL and a message naming the message
 * index: no messages (n == 0 or msgs NULL); a NULL role or content; a role
 * other than system/user/assistant; in formats that fold the system text into
 * a user turn (llama2*, mistral-v1/v3/v3-tekken, gemma), a system message
 * anywhere but first, and turns after it that do not alternate
 * user/assistant starting with user (their models' templates refuse anything
 * else). The other formats take any order.
 * Prefix property: the prompt of messages[0..n) rendered without the
 * generation prompt is a prefix of the prompt of messages[0..n+1), so a chat
 * loop can tell which text each new message adds. (Tokenizing that tail on
 * its own may split differently from tokenizing the whole prompt where the
 * tail does not start with a control token, e.g. llama2's plain "[INST]".)
 * PAGODA_EUNSUPPORTED for a kind out of range; PAGODA_ENOMEM if memory runs out.
 * On failure *out is NULL. */
int chat_template_apply(enum chat_template_kind k, const struct chat_message *msgs, size_t n,
                        bool add_generation_prompt, const char *bos_text, const char *eos_text,
                        char **out, size_t *out_len, char *err, size_t errlen);

#endif
