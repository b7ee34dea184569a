# The hackathon guide's Method 1 (mistralai 0.x, MistralClient), verbatim except for three lines:
# `import tokenlog`, `@tokenlog.track_usage` on the function (which replaces the guide's own `log_usage_to_csv`
# call), and `endpoint=` on the client: mistralai 0.4.2 reads no endpoint variable, and tests/recording/
# test_guide_scripts.py points it at the local server through MISTRAL_SERVER_URL (the real API when unset).
import os

from mistralai.client import MistralClient
from mistralai.models.chat_completion import ChatMessage

import tokenlog

api_key = os.environ["MISTRAL_API_KEY"]
model = "mistral-large-latest"
client = MistralClient(api_key=api_key, endpoint=os.environ.get("MISTRAL_SERVER_URL", "https://api.mistral.ai"))


@tokenlog.track_usage
def call_mistral_and_log(prompt):
    messages = [ChatMessage(role="user", content=prompt)]
    chat_response = client.chat(model=model, messages=messages)
    return chat_response.choices[0].message.content
