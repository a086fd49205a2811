"""Drives coachloop's LRS with TinCanPython (the `tincan` package from PyPI), as an LMS
would: Basic auth with an LRS credential, statements saved one at a time (PUT, since the
library gives each an id) and in a batch (POST), read back by id, queried with filters,
paged through `more` links, voided and read back as voided.

Usage: tincan_client.py ENDPOINT KEY SECRET — prints one JSON line of what it saw.
"""

import json
import sys
import uuid

from tincan import (
    Activity,
    Agent,
    RemoteLRS,
    Result,
    Score,
    Statement,
    StatementRef,
    Verb,
)

ADL = "http://adlnet.gov/expapi/verbs/"


def check(response, what):
    if not response.success:
        raise SystemExit(
            f"{what} failed: {response.response.status} {response.data!r}"
        )
    return response.content


def statement(email, verb, activity, scaled=None):
    s = Statement(
        actor=Agent(mbox=f"mailto:{email}", name=email.split("@")[0]),
        verb=Verb(id=ADL + verb, display={"en-US": verb}),
        object=Activity(id=activity),
    )
    if scaled is not None:
        s.result = Result(score=Score(scaled=scaled), success=scaled >= 0.8)
    return s


def main():
    endpoint, key, secret = sys.argv[1:4]
    lrs = RemoteLRS(endpoint=endpoint, username=key, password=secret, version="1.0.3")
    seen = {}

    about = check(lrs.about(), "about")
    seen["versions"] = list(about.version)

    policy = "https://moodle.example/xapi/activities/acceptable-use"
    module = "https://moodle.example/xapi/activities/password-management"
    one = statement("ana@acme.example", "completed", policy)
    one.id = str(uuid.uuid4())
    saved = check(lrs.save_statement(one), "save_statement")
    seen["saved_id"] = saved.id == one.id

    batch = check(
        lrs.save_statements(
            [
                statement("bob@acme.example", "passed", module, 0.9),
                statement("ana@acme.example", "failed", module, 0.3),
                statement("ana@acme.example", "experienced", policy),
            ]
        ),
        "save_statements",
    )
    seen["batch_ids"] = sum(1 for s in batch if s.id)

    back = check(lrs.retrieve_statement(one.id), "retrieve_statement")
    seen["read_back_verb"] = back.verb.id
    seen["authority"] = back.authority.account.name if back.authority else None

    result = check(
        lrs.query_statements({"agent": Agent(mbox="mailto:ana@acme.example"), "limit": 2}),
        "query_statements",
    )
    pages = [len(result.statements)]
    while result.more:
        result = check(lrs.more_statements(result), "more_statements")
        pages.append(len(result.statements))
    seen["pages_of_ana"] = pages

    voiding = Statement(
        actor=Agent(mbox="mailto:admin@moodle.example"),
        verb=Verb(id=ADL + "voided"),
        object=StatementRef(id=batch[0].id),
    )
    check(lrs.save_statements([voiding]), "void")
    voided = check(lrs.retrieve_voided_statement(batch[0].id), "retrieve_voided_statement")
    seen["voided_verb"] = voided.verb.id
    gone = lrs.retrieve_statement(batch[0].id)
    seen["voided_by_id_status"] = gone.response.status

    print(json.dumps(seen))


if __name__ == "__main__":
    main()
