# The hackathon guide's Method 2 (plain HTTP with requests), verbatim except for three lines: `import tokenlog`,
# `@tokenlog.track_usage` on the function (which replaces the guide's own `log_usage_to_csv` call), and the URL,
# which tests/recording/test_guide_scripts.py points at the local server through MISTRAL_SERVER_URL (the real API
# when unset).
import os

import requests

import tokenlog

api_key = os.environ["MISTRAL_API_KEY"]
model = "mistral-large-latest"
url = os.environ.get("MISTRAL_SERVER_URL", "https://api.mistral.ai") + "/v1/chat/completions"
headers = {"Content-Type": "application/json", "Accept": "application/json", "Authorization": f"Bearer {api_key}"}


@tokenlog.track_usage
def call_mistral_and_log(prompt):
    data = {"model": model, "messages": [{"role": "user", "content": prompt}]}
    response = requests.post(url, headers=headers, json=data)
    response.raise_for_status()
    response_data = response.json()
    return response_data["choices"][0]["message"]["content"]
