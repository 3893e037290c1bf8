"""The official OpenAI Python SDK against the companion gateway.

Run by companion/tests/openai_sdk.rs with the gateway URL, a product access token and a WAV
recording; exits non-zero (with the failed assertion) if anything a stock client does breaks.

    python3 client.py BASE_URL TOKEN WAV_PATH EXPECTED_REPLY
"""

import io
import sys
import wave

import openai
from openai import OpenAI


def main() -> None:
    base_url, token, wav_path, expected_reply = sys.argv[1:5]
    # No retries: an error must surface here, not be papered over.
    client = OpenAI(base_url=base_url, api_key=token, max_retries=0, timeout=60)
    messages = [
        {"role": "system", "content": "You are a friendly companion."},
        {"role": "user", "content": "what is the weather like today"},
    ]

    # Non-streaming chat.
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    answer = completion.choices[0].message.content
    assert completion.object == "chat.completion", completion
    assert completion.choices[0].message.role == "assistant", completion
    assert completion.choices[0].finish_reason == "stop", completion
    assert answer.strip() == expected_reply.strip(), (answer, expected_reply)
    assert completion.usage is not None and completion.usage.completion_tokens > 0, completion
    print(f"chat: {answer!r}")

    # Streaming chat, with the usage chunk.
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
    )
    parts, finish, usage, roles = [], None, None, []
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.role:
                roles.append(choice.delta.role)
            if choice.delta.content:
                parts.append(choice.delta.content)
            if choice.finish_reason:
                finish = choice.finish_reason
    streamed = "".join(parts)
    assert roles == ["assistant"], roles
    assert streamed == answer, (streamed, answer)
    assert len(parts) > 3, parts
    assert finish == "stop", finish
    assert usage is not None and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    print(f"stream: {len(parts)} deltas")

    # Speech, streamed.
    audio = bytearray()
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input="Hello there, how are you today?", response_format="wav"
    ) as response:
        assert response.headers["content-type"] == "audio/wav", response.headers
        for piece in response.iter_bytes():
            audio.extend(piece)
    with wave.open(io.BytesIO(bytes(audio))) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (24000, 1, 2)
        frames = w.readframes(10**9)
    seconds = len(frames) / 48000
    assert 1.0 < seconds < 4.0, seconds
    print(f"speech: {seconds:.2f} s")

    # An unsupported format is a BadRequestError with OpenAI's error body.
    try:
        client.audio.speech.create(model="tts-1", voice="alloy", input="Hi", response_format="mp3")
        raise AssertionError("mp3 was accepted")
    except openai.BadRequestError as e:
        assert e.body["param"] == "response_format", e.body

    # Transcription of a recording.
    with open(wav_path, "rb") as f:
        transcript = client.audio.transcriptions.create(model="whisper-1", file=f)
    words = transcript.text.lower()
    print(f"transcription: {transcript.text!r}")
    assert "weather" in words and "today" in words, transcript.text

    # The models behind the chains, and one of them by id; an unknown id is NotFoundError.
    models = client.models.list()
    ids = [m.id for m in models]
    assert ids and all(m.object == "model" and m.owned_by for m in models), models
    assert "pocketsphinx" in ids, ids  # the offline recogniser of this stack's STT chain
    assert client.models.retrieve(ids[0]).id == ids[0]
    try:
        client.models.retrieve("no-such-model")
        raise AssertionError("an unknown model was found")
    except openai.NotFoundError as e:
        assert e.code == "model_not_found", e
    print(f"models: {ids}")

    # A wrong key is an AuthenticationError.
    try:
        OpenAI(base_url=base_url, api_key="wrong", max_retries=0).chat.completions.create(
            model="gpt-4o-mini", messages=messages
        )
        raise AssertionError("a wrong key was accepted")
    except openai.AuthenticationError as e:
        assert e.code == "invalid_api_key", e

    print("ok")


if __name__ == "__main__":
    main()
