"""Pydantic models of OIP's JSON objects, as its specification names them. The GET routes answer
with them; the inference objects only document `/infer` (it is parsed by `tensors.py`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

Parameters = dict[str, str | int | float | bool]
TensorData = list[Any]  # numbers, strings (BYTES) or booleans; flat or nested row-major


class ServerMetadata(BaseModel):
    name: str = Field(examples=["digit-autoencoder"])
    version: str = Field(examples=["1.0.0"])
    extensions: list[str] = Field(examples=[["binary_tensor_data"]])


class ServerLive(BaseModel):
    live: bool


class ServerReady(BaseModel):
    ready: bool


class ModelReady(BaseModel):
    name: str = Field(examples=["mnist-ae"])
    ready: bool


class MetadataTensor(BaseModel):
    name: str
    datatype: str = Field(examples=["UINT8"])
    shape: list[int] = Field(description="-1 for a dimension of any size (the batch)")


class ModelMetadata(BaseModel):
    name: str = Field(examples=["mnist-ae"])
    versions: list[str] = Field(examples=[["1.0.0"]])
    platform: str = Field(examples=["pytorch_torchscript"])
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]
    parameters: Parameters = Field(
        description="What the model does, every form each input may take, and the request "
        "parameters it reads"
    )


class RequestInput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: Parameters | None = Field(
        None, description="binary_data_size: the tensor's bytes after the JSON object"
    )
    data: TensorData | None = Field(None, description="absent when the tensor is binary")


class RequestOutput(BaseModel):
    name: str
    parameters: Parameters | None = Field(None, description="binary_data: true for raw bytes")


class InferenceRequest(BaseModel):
    id: str | None = None
    parameters: Parameters | None = Field(
        None, description="binary_data_output; invert and fit (BYTES inputs); steps and method "
        "(the interpolator)",
    )  # fmt: skip
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: Parameters | None = None
    data: TensorData | None = Field(None, description="absent when the tensor is binary")


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[ResponseOutput]


class InferenceError(BaseModel):
    """OIP's error object, with the service's problem fields beside `error`."""

    error: str = Field(description="what went wrong (the protocol's member, read by clients)")
    type: str = Field(examples=["urn:digit-ae:problem:bad-tensor"])
    title: str
    status: int
    detail: str = Field(description="the same message as `error`")
    request_id: str
    errors: list[dict[str, str]] | None = None
