"""YuniKorn ACL semantics: the grammar and examples of YuniKorn's acls.md and acl_test.go."""

from __future__ import annotations

import pytest

from gpupool.core.acl import ACL, ACLError


@pytest.mark.parametrize(
    ("text", "users", "groups", "everyone"),
    [
        ("user1", {"user1"}, set(), False),
        ("user1,user2", {"user1", "user2"}, set(), False),
        ("user1,user2 ", {"user1", "user2"}, set(), False),
        ("user1,user2 group1", {"user1", "user2"}, {"group1"}, False),
        ("user1,user2 group1,group2", {"user1", "user2"}, {"group1", "group2"}, False),
        ("user2 group1,group2", {"user2"}, {"group1", "group2"}, False),
        (" group1,group2", set(), {"group1", "group2"}, False),
        ("* group1,group2", set(), set(), True),
        ("user1,user2 *", set(), set(), True),
        ("*", set(), set(), True),
        ("* ", set(), set(), True),
        (" *", set(), set(), True),
        ("dotted.user", {"dotted.user"}, set(), False),
        ("user,user", {"user"}, set(), False),
        (" group,group", set(), {"group"}, False),
        ("system:serviceaccount:ns:sa", {"system:serviceaccount:ns:sa"}, set(), False),
        ("sue@example.com", {"sue@example.com"}, set(), False),
    ],
)
def test_parse(text: str, users: set[str], groups: set[str], everyone: bool) -> None:
    acl = ACL.parse(text)
    assert acl.users == users
    assert acl.groups == groups
    assert acl.all_allowed is everyone
    assert acl.configured


@pytest.mark.parametrize("text", ["  ", " a b ", "a b c", "sue dev ops"])
def test_more_than_one_space_is_an_error(text: str) -> None:
    with pytest.raises(ACLError, match="more than one space"):
        ACL.parse(text)


def test_not_a_string_is_an_error() -> None:
    with pytest.raises(ACLError):
        ACL.parse(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "user", "groups", "allowed"),
    [
        ("user1,user2 group1,group2", "", [], False),
        ("user1,user2 group1,group2", "user1", [], True),
        ("user1,user2 group1,group2", "user3", ["group1"], True),
        ("user1,user2 group1,group2", "user3", ["group3", "group1"], True),
        ("user1,user2 group1,group2", "user3", ["group3"], False),
        ("*", "", [], True),
        ("*", "user1", ["group1"], True),
        ("", "", [], False),
        ("", "user1", ["group1"], False),
        (" ", "user1", ["group1"], False),
        (None, "user1", ["group1"], False),
        # acls.md: "sue dev" admits sue (whatever her groups) and members of dev, not bob.
        ("sue dev", "sue", [], True),
        ("sue dev", "john", ["dev"], True),
        ("sue dev", "bob", ["test"], False),
        # acls.md: " dev,test" admits group members only.
        (" dev,test", "sue", [], False),
        (" dev,test", "john", ["dev"], True),
        (" dev,test", "bob", ["test"], True),
        # Without the leading space the name is a user, not a group.
        ("dev", "john", ["dev"], False),
        # User and group names are case-sensitive.
        ("Sue", "sue", [], False),
    ],
)
def test_allows(text: str | None, user: str, groups: list[str], allowed: bool) -> None:
    assert ACL.parse(text).allows(user, groups) is allowed


def test_deny_all_forms() -> None:
    for text in (None, "", " "):
        acl = ACL.parse(text)
        assert acl.denies_all
        assert not acl.allows("anyone", ["any"])
    assert ACL.parse(None).configured is False
    assert ACL.parse("").configured is True


def test_invalid_names_are_ignored_and_reported() -> None:
    acl = ACL.parse("good,-bad,1up ok-group,grp$")
    assert acl.users == {"good"}
    assert acl.groups == {"ok-group"}
    assert acl.ignored == ("-bad", "1up", "grp$")
    assert not acl.allows("-bad")
    assert "ignored invalid names: -bad, 1up, grp$" in acl.describe()


@pytest.mark.parametrize(
    ("text", "description"),
    [
        ("*", "everyone"),
        (None, "nobody (not set)"),
        ("", "nobody"),
        (" ", "nobody"),
        ("sue,bob", "users bob, sue"),
        (" dev", "groups dev"),
        ("sue dev,ops", "users sue; groups dev, ops"),
    ],
)
def test_describe(text: str | None, description: str) -> None:
    assert ACL.parse(text).describe() == description
