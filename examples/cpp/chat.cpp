// examples/cpp/chat.cpp — a console chat with the C++ wrapper (deepseek.hpp).
//
//   chat-cpp MODEL.gguf [--template deepseek2|deepseek3|deepseek-r1] [-n MAX_TOKENS]
//
// Each stdin line is a user message. The whole conversation is rendered with the chat template
// every turn and the session keeps the common prefix, so only the new turn runs. Reasoning of
// R1 models is printed in brackets. Errors arrive as deepseek::Error with the library's text.
#include "deepseek.hpp"

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

int main(int argc, char **argv) {
    if (argc < 2) {
        std::cerr << "usage: " << argv[0] << " MODEL.gguf [--template NAME] [-n MAX_TOKENS]\n";
        return 2;
    }
    ds_chat_template tmpl = DS_CHAT_TEMPLATE_AUTO;
    unsigned max_tokens = 256;
    for (int i = 2; i + 1 < argc; i += 2) {
        std::string opt = argv[i], v = argv[i + 1];
        if (opt == "-n") {
            max_tokens = static_cast<unsigned>(std::atoi(v.c_str()));
        } else if (opt == "--template") {
            tmpl = v == "deepseek2"     ? DS_CHAT_TEMPLATE_DEEPSEEK2
                   : v == "deepseek3"   ? DS_CHAT_TEMPLATE_DEEPSEEK3
                   : v == "deepseek-r1" ? DS_CHAT_TEMPLATE_DEEPSEEK_R1
                                        : DS_CHAT_TEMPLATE_AUTO;
        }
    }
    try {
        deepseek::Model model(argv[1]);
        deepseek::Tokenizer tok = model.tokenizer();
        if (tmpl == DS_CHAT_TEMPLATE_AUTO)
            tmpl = tok.detect_template(); // throws with the library's explanation if unknown
        deepseek::Session session(model, [&](ds_session_params &p) {
            p.max_tokens = max_tokens;
            p.reasoning = tmpl == DS_CHAT_TEMPLATE_DEEPSEEK_R1 ? DS_REASONING_MODE_ON
                                                               : DS_REASONING_MODE_AUTO;
        });
        std::vector<deepseek::Message> conversation;
        std::string line;
        while (std::getline(std::cin, line)) {
            if (line.empty())
                continue;
            conversation.push_back({"user", line});
            session.sync(deepseek::chat_tokens(tok, conversation, tmpl));
            std::string answer;
            bool more = true;
            while (more) {
                more = session.step();
                for (const auto &piece : session.text()) {
                    if (piece.kind == DS_TEXT_REASONING) {
                        std::cout << "[" << piece.text << "]";
                    } else {
                        std::cout << piece.text;
                        answer += piece.text;
                    }
                }
                std::cout.flush();
            }
            std::cout << "\n";
            conversation.push_back({"assistant", answer});
        }
        std::cerr << "[" << session.n_tokens() << " tokens in the session]\n";
    } catch (const deepseek::Error &e) {
        std::cerr << "chat-cpp: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
