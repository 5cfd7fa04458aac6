"""Templates of the synthetic TOP-style dataset (data/synthetic.py).

Invented for this project: every utterance pattern and label here is made
up, in the style of task-oriented parsing data.
"""

# intent -> (domain, "|"-separated templates). "{x}" is a slot from _FILLERS;
# "[...]" is an optional part, left out 40% of the time.
INTENT_TEMPLATES = {
  "CREATE_ALARM": (
    "alarm",
    "set an alarm {dt}|wake me up {dt}|set a {alarm_name} alarm {dt}"
    "|{dt} I need an alarm|create an alarm {dt} [called {alarm_name}]"
    "|I want an alarm {dt} [for {alarm_name}]",
  ),
  "GET_ALARM": (
    "alarm",
    "what alarms do I have [{day}]|show my alarms [{day}]"
    "|when is my {ordinal} alarm|is there an alarm set {day}",
  ),
  "DELETE_ALARM": (
    "alarm",
    "delete the alarm {dt}|cancel my {alarm_name} alarm"
    "|remove all alarms [{day}]|turn off the {ordinal} alarm",
  ),
  "SNOOZE_ALARM": (
    "alarm",
    "snooze the alarm [for {dur}]|snooze {dur}|give me {dur} more",
  ),
  "GET_WEATHER": (
    "weather",
    "what's the weather [{day}] in {loc}|what's the weather in {loc} [{day}]"
    "|will it be {wattr} [{day}]|is it {wattr} [in {loc}] [{day}]"
    "|how {wattr} is it in {loc}|weather {day} in {unit}"
    "|forecast for {loc} [{day}] [in {unit}]",
  ),
  "GET_SUNRISE": (
    "weather",
    "when is sunrise [in {loc}] [{day}]|what time does the sun come up [{day}]",
  ),
  "GET_SUNSET": (
    "weather",
    "when is sunset [in {loc}] [{day}]"
    "|what time does the sun go down [in {loc}]",
  ),
  "GET_CONTACT": (
    "people",
    "who is {owner}'s {rel}|who is {my} {rel}|show me {my} {rel}'s number"
    "|what's the name of {owner}'s {rel}",
  ),
  "SEND_MESSAGE": (
    "messaging",
    "text {recipient} {content}|send a message to {recipient} saying {content}"
    "|tell {recipient} that {content}"
    "|send a {type_content} message to {recipient}"
    "|message {recipient} [{content}]",
  ),
  "GET_MESSAGE": (
    "messaging",
    "read my messages [from {sender}]|did {sender} text me [{day}]"
    "|any new {type_content} messages from {sender}"
    "|show messages {day} [from {sender}]",
  ),
  "PLAY_MUSIC": (
    "music",
    "play some {genre}|play {song} by {artist}|put on my {playlist} playlist"
    "|play the {music_type} {song}|I want to hear {artist}"
    "|play {genre} [by {artist}]|shuffle my {playlist} playlist",
  ),
  "PAUSE_MUSIC": (
    "music",
    "pause the music|stop playing|pause this {music_type}",
  ),
  "SKIP_TRACK_MUSIC": (
    "music",
    "skip this {music_type}|next {music_type}|skip to the next one",
  ),
  "CREATE_REMINDER": (
    "reminder",
    "remind {me} to {todo} [{dt}]|remind {me} {dt} to {todo}"
    "|{dt} remind {me} to {todo}|set a reminder to {todo} [{dt}]"
    "|don't let {me} forget to {todo} [{day}]",
  ),
  "GET_REMINDER": (
    "reminder",
    "what are my reminders [{day}]|show {me} my reminders for {day}"
    "|do I have a reminder to {todo}",
  ),
  "DELETE_REMINDER": (
    "reminder",
    "delete the reminder to {todo}|cancel my reminders {day}"
    "|remove the reminder about {todo} [{day}]",
  ),
  "CREATE_TIMER": (
    "timer",
    "set a {method} for {dur}|start a {dur} {method}|{method} for {dur}"
    "|count down {dur}",
  ),
  "PAUSE_TIMER": ("timer", "pause the {method}|hold my {method}"),
  "GET_TIMER": (
    "timer",
    "how much time is left on my {method}"
    "|how long until the {method} goes off|check the {method}",
  ),
  "CREATE_CALL": (
    "calling",
    "call {contact}|call {contact} [{dt}]|phone {contact} on speaker"
    "|make a {type_content} call to {contact}|ring {contact} and {contact}",
  ),
  "END_CALL": (
    "calling",
    "hang up|end the call [with {contact}]|stop calling {contact}",
  ),
}
