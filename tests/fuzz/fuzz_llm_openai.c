/* libFuzzer target: the OpenAI Chat Completions stream parser. */
#define FUZZ_KIND LLM_OPENAI
#include "fuzz_llm.h"
