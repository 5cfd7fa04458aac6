"""A small synthetic TOP-style dataset (MTOP's decoupled form), for tests.

Every utterance comes from a template of its intent with slot fillers drawn
from short word lists written for this module (no MTOP text). Slots can hold
nested intents: a contact can be "[IN:GET_CONTACT ...]" ("my mom", "Ana's
boss"), a reminder's TODO can be a call or a message. Parses keep only slot
words, in utterance order, and every slot word is one of the utterance's
tokens (`tokenize`), so a copy (pointer) decoder can reach 100%.

Templates vary the slot order, leave some slots out, and add politeness words
around the request, so the task is learnable but not trivial.
"""

import dataclasses
import random
import re

from pqrnn_jax.data import synthetic_templates
from pqrnn_jax.data.example import Example
from pqrnn_jax.data.tokenizer import tokenize


@dataclasses.dataclass(frozen=True)
class _Intent:
  """An intent node: its label and pieces (literal text or slots)."""

  label: str
  pieces: tuple


@dataclasses.dataclass(frozen=True)
class _Slot:
  """A slot node: its label and content (text or a nested intent)."""

  label: str
  content: "str | _Intent"


def _text(node) -> str:
  """The utterance text a node covers."""
  if isinstance(node, str):
    return node
  if isinstance(node, _Slot):
    return _text(node.content)
  out = ""
  for piece in node.pieces:
    t = _text(piece)
    # A clitic literal ("'s") attaches to the previous word.
    out += t if t.startswith("'") or not out else " " + t
  return out


def _capitalize(node):
  """Upper-cases the first letter of the node's text, inside slots too."""
  if isinstance(node, str):
    return node[:1].upper() + node[1:]
  if isinstance(node, _Slot):
    return dataclasses.replace(node, content=_capitalize(node.content))
  first, *rest = node.pieces
  return dataclasses.replace(node, pieces=(_capitalize(first), *rest))


def _tree(node) -> str:
  """MTOP decoupled form: labels plus slot words only."""
  if isinstance(node, _Slot):
    if isinstance(node.content, _Intent):
      inner = _tree(node.content)
    else:
      inner = " ".join(tokenize(node.content))
    return f"[SL:{node.label} {inner} ]"
  slots = [_tree(p) for p in node.pieces if isinstance(p, _Slot)]
  return " ".join([f"[IN:{node.label}", *slots, "]"])


def _slot_words(node) -> list[list[str]]:
  """Token lists of every text slot (to check they occur in the tokens)."""
  if isinstance(node, _Slot):
    if isinstance(node.content, _Intent):
      return _slot_words(node.content)
    return [tokenize(node.content)]
  if isinstance(node, _Intent):
    return [w for p in node.pieces for w in _slot_words(p)]
  return []


def _words(spec: str) -> tuple[str, ...]:
  """Splits a "|"-separated word list (entries may hold spaces)."""
  return tuple(w.strip() for w in spec.split("|"))


# Word lists, all made up for this module.
_NAMES = _words(
  "Ana|Ben|Chloe|Dmitri|Elena|Farid|Grace|Hiro|Ines|Jonas|Kemal|Lucia|Marco"
  "|Nadia|Oscar|Priya|Quinn|Rosa|Samir|Tessa|Uma|Victor|Wen|Yusuf|Zoe|Aiko"
  "|Bruno|Carmen|Declan|Esther|Felix|Gwen|Hamid|Mary Ellen|Jean-Luc"
  "|Anne Marie|O'Neill|Dr. Patel"
)
_RELATIONS = _words(
  "mom|dad|sister|brother|wife|husband|boss|grandma|grandpa|uncle|aunt"
  "|cousin|son|daughter|roommate|landlord|coach|doctor|step-mom"
)
_CITIES = _words(
  "Paris|Lisbon|Nairobi|Denver|Osaka|Toronto|Cairo|San Diego|New Orleans"
  "|Buenos Aires|Oslo|Perth|Quito|Hanoi|St. Louis|Kraków|Zürich|Montréal"
)
_WEATHER_ATTRS = _words(
  "rainy|snowy|sunny|windy|foggy|humid|cold|hot|stormy|cloudy|warm|freezing"
)
_GENRES = _words(
  "jazz|rock|hip hop|classical|country|lo-fi|reggae|blues|k-pop|metal|soul"
)
_ARTISTS = _words(
  "Luna Vale|The Copper Foxes|DJ Marlow|Sable Creek|Nico Arden"
  "|The Velvet Tides|Mira Sol|Echo Harbor|Kit Ramsey|Orchid Lane"
)
_SONGS = _words(
  "Paper Lanterns|Midnight Drive|Salt and Honey|Glass Houses|Slow Orbit"
  "|Cold Coffee|Northern Lights|Brave New Morning|Tin Roof|Wildflower Road"
)
_PLAYLISTS = _words(
  "morning run|study beats|road trip|rainy day|dinner party|workout mix"
  "|sleep sounds"
)
_TODOS = _words(
  "buy milk|pick up the dry cleaning|water the plants|pay the rent"
  "|feed the cat|take out the trash|book a dentist appointment"
  "|renew my passport|bring the charger|check the oven|send the report"
  "|pack the lunches|return the library books|defrost the chicken"
  "|charge the car|cancel the gym membership|print the boarding pass"
  "|order more coffee|clean the fridge"
)
_CONTENTS = _words(
  "I'm running late|dinner is ready|see you at the station"
  "|don't forget the tickets|call me back|the meeting moved|happy birthday"
  "|can you grab bread|I'll be home soon|we won the game"
  "|the package arrived|traffic is terrible|where did you park"
  "|the kids are asleep|bring an umbrella"
)
_ALARM_NAMES = _words("gym|work|school run|medicine|flight|yoga")
_WEEKDAYS = _words("Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday")
_PREFIXES = _words("hey|ok|please|hi,|so|um")
_SUFFIXES = _words("please|thanks|thank you|right away")


def _clock(rng: random.Random) -> str:
  """A clock time in one of several spellings ("7 am", "7:30pm", "noon")."""
  h = rng.randint(1, 12)
  m = rng.choice(("", "", ":15", ":30", ":45", ":05"))
  style = rng.randrange(6)
  if style == 0:
    return f"{h}{m} {rng.choice(('am', 'pm'))}"
  if style == 1:
    return f"{h}{m}{rng.choice(('am', 'pm', 'AM', 'PM'))}"
  if style == 2:
    return f"{h}{m} {rng.choice(('a.m.', 'p.m.'))}"
  if style == 3:
    return f"{h}{m}" if m else f"{h} o'clock"
  if style == 4:
    return rng.choice(("noon", "midnight"))
  return f"{h}{m or ':00'}"


def _date(rng: random.Random) -> str:
  """A day expression ("tomorrow", "on Friday", "this weekend")."""
  day = rng.choice(_WEEKDAYS)
  options = _words(
    f"today|tomorrow|tonight|on {day}|next {day}|this weekend"
    f"|tomorrow morning|this evening|{day} night"
    f"|on June {rng.randint(1, 28)}|the 3rd of May"
  )
  return rng.choice(options)


def _date_time(rng: random.Random) -> str:
  """A time and/or day, preposition included as MTOP does."""
  choice = rng.randrange(4)
  if choice == 0:
    return f"{rng.choice(('at', 'for'))} {_clock(rng)}"
  if choice == 1:
    return _date(rng)
  if choice == 2:
    return f"{_date(rng)} at {_clock(rng)}"
  return f"at {_clock(rng)} {_date(rng)}"


def _duration(rng: random.Random) -> str:
  """A timer length ("10 minutes", "half an hour")."""
  n = rng.choice((2, 5, 10, 15, 20, 25, 30, 45, 90))
  options = _words(
    f"{n} minutes|{n} seconds|{rng.randint(1, 3)} hours|an hour"
    f"|half an hour|1 hour and {n} minutes|{n}-minute"
  )
  return rng.choice(options)


def _contact(rng: random.Random, label: str) -> _Slot:
  """A person: a name, or a nested GET_CONTACT ("my mom", "Ana's boss")."""
  r = rng.random()
  if r < 0.55:
    return _Slot(label, rng.choice(_NAMES))
  rel = _Slot("TYPE_RELATION", rng.choice(_RELATIONS))
  if r < 0.85:
    my = _Slot("CONTACT_RELATED", "my")
    return _Slot(label, _Intent("GET_CONTACT", (my, rel)))
  # MTOP leaves the possessive "'s" out of the tree.
  owner = _Slot("CONTACT_RELATED", rng.choice(_NAMES))
  return _Slot(label, _Intent("GET_CONTACT", (owner, "'s", rel)))


def _todo(rng: random.Random) -> _Slot:
  """A reminder's TODO: plain text or a nested call / message intent."""
  r = rng.random()
  if r < 0.6:
    return _Slot("TODO", rng.choice(_TODOS))
  if r < 0.8:
    verb = rng.choice(("call", "phone", "ring"))
    call = _Intent("CREATE_CALL", (verb, _contact(rng, "CONTACT")))
    return _Slot("TODO", call)
  content = _Slot("CONTENT_EXACT", rng.choice(_CONTENTS))
  verb = rng.choice(("text", "message"))
  pieces = (verb, _contact(rng, "RECIPIENT"), "that", content)
  return _Slot("TODO", _Intent("SEND_MESSAGE", pieces))


def _pick(label: str, options: tuple[str, ...]):
  """A filler that draws a plain slot from a word list."""
  return lambda rng: _Slot(label, rng.choice(options))


# Placeholder -> function(rng) returning a slot.
_FILLERS = {
  "dt": lambda rng: _Slot("DATE_TIME", _date_time(rng)),
  "day": lambda rng: _Slot("DATE_TIME", _date(rng)),
  "dur": lambda rng: _Slot("DATE_TIME", _duration(rng)),
  "alarm_name": _pick("ALARM_NAME", _ALARM_NAMES),
  "ordinal": _pick("ORDINAL", ("next", "first", "last")),
  "loc": _pick("LOCATION", _CITIES),
  "wattr": _pick("WEATHER_ATTRIBUTE", _WEATHER_ATTRS),
  "unit": _pick("WEATHER_TEMPERATURE_UNIT", ("celsius", "fahrenheit")),
  "contact": lambda rng: _contact(rng, "CONTACT"),
  "recipient": lambda rng: _contact(rng, "RECIPIENT"),
  "sender": lambda rng: _contact(rng, "SENDER"),
  "content": _pick("CONTENT_EXACT", _CONTENTS),
  "type_content": _pick("TYPE_CONTENT", ("voice", "video", "audio")),
  "genre": _pick("MUSIC_GENRE", _GENRES),
  "artist": _pick("MUSIC_ARTIST_NAME", _ARTISTS),
  "song": _pick("MUSIC_TRACK_TITLE", _SONGS),
  "playlist": _pick("MUSIC_PLAYLIST_TITLE", _PLAYLISTS),
  "music_type": _pick("MUSIC_TYPE", ("song", "album", "track")),
  "me": _pick("PERSON_REMINDED", ("me",)),
  "my": _pick("CONTACT_RELATED", ("my",)),
  "owner": _pick("CONTACT_RELATED", _NAMES),
  "rel": _pick("TYPE_RELATION", _RELATIONS),
  "todo": _todo,
  "method": _pick("METHOD_TIMER", ("timer", "stopwatch", "countdown")),
}

_INTENTS = synthetic_templates.INTENT_TEMPLATES
INTENTS = tuple(_INTENTS)
DOMAINS = tuple(sorted({d for d, _ in _INTENTS.values()}))
_OPTIONAL = re.compile(r"\[([^\]]*)\]")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _instantiate(template: str, label: str, rng: random.Random) -> _Intent:
  """Drops some optional groups, then fills the template's slots."""
  template = _OPTIONAL.sub(
    lambda m: m.group(1) if rng.random() < 0.6 else "", template
  )
  pieces = []
  pos = 0
  for m in _PLACEHOLDER.finditer(template):
    pieces.append(" ".join(template[pos : m.start()].split()))
    pieces.append(_FILLERS[m.group(1)](rng))
    pos = m.end()
  pieces.append(" ".join(template[pos:].split()))
  return _Intent(label, tuple(p for p in pieces if p))


def _example(seed: int, i: int, locale: str) -> Example:
  """Example i of a seed; independent of how many are generated."""
  rng = random.Random(f"syn-{seed}-{i}")
  label = rng.choice(INTENTS)
  domain, templates = _INTENTS[label]
  root = _instantiate(rng.choice(_words(templates)), label, rng)
  # Distractor words around the request; they stay out of the tree.
  if rng.random() < 0.2:
    root = dataclasses.replace(
      root, pieces=(rng.choice(_PREFIXES), *root.pieces)
    )
  if rng.random() < 0.15:
    root = dataclasses.replace(
      root, pieces=(*root.pieces, rng.choice(_SUFFIXES))
    )
  if rng.random() < 0.5:
    root = _capitalize(root)
  text = _text(root) + rng.choice(("", "", "", "?", ".", "!"))
  tokens = tokenize(text)
  for words in _slot_words(root):
    # A slot's words must be a contiguous run of the utterance's tokens.
    n = len(words)
    if not any(tokens[k : k + n] == words for k in range(len(tokens))):
      raise AssertionError(f"slot words {words} not in tokens {tokens}")
  return Example(
    id=f"syn-{seed}-{i}",
    locale=locale,
    domain=domain,
    utterance=text,
    tokens=tuple(tokens),
    parse=_tree(root),
  )


def generate(n: int, seed: int = 0, *, locale: str = "en_XX") -> list[Example]:
  """Returns n synthetic examples; the same seed gives the same examples."""
  return [_example(seed, i, locale) for i in range(n)]


def splits(
  n_train: int, n_eval: int, n_test: int, seed: int = 0
) -> dict[str, list[Example]]:
  """Train / eval / test lists generated from three disjoint seeds."""
  return {
    "train": generate(n_train, 3 * seed),
    "eval": generate(n_eval, 3 * seed + 1),
    "test": generate(n_test, 3 * seed + 2),
  }
