"""A real SMTP server for the tests: accepts every message on 127.0.0.1:PORT and appends
it to OUT as one JSON line {"from", "to", "data"}. Prints "ready" once listening. With
`decode`, each line also holds the message as a mail client reads it: "subject",
"to_header", "message_id", and the decoded "text" and "html" parts.

    python3 smtp_sink.py PORT OUT [decode]
"""
import email
import email.policy
import json
import sys
import time

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, out, decode):
        self.out = out
        self.decode = decode

    async def handle_DATA(self, server, session, envelope):
        record = {
            "from": envelope.mail_from,
            "to": list(envelope.rcpt_tos),
            "data": envelope.content.decode("utf-8", "replace"),
        }
        if self.decode:
            message = email.message_from_bytes(envelope.content, policy=email.policy.default)
            record["subject"] = str(message["subject"])
            record["to_header"] = str(message["to"])
            record["message_id"] = str(message["message-id"])
            for kind in ("plain", "html"):
                part = message.get_body(preferencelist=(kind,))
                record["text" if kind == "plain" else "html"] = (
                    part.get_content() if part is not None else None
                )
        with open(self.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        return "250 Message accepted for delivery"


def main():
    port, out = int(sys.argv[1]), sys.argv[2]
    decode = len(sys.argv) > 3 and sys.argv[3] == "decode"
    controller = Controller(Sink(out, decode), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
