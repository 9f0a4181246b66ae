from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Formality(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FORMALITY_UNSPECIFIED: _ClassVar[Formality]
    FORMALITY_MORE: _ClassVar[Formality]
    FORMALITY_LESS: _ClassVar[Formality]
FORMALITY_UNSPECIFIED: Formality
FORMALITY_MORE: Formality
FORMALITY_LESS: Formality

class GlossaryEntry(_message.Message):
    __slots__ = ("source", "target")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    source: str
    target: str
    def __init__(self, source: _Optional[str] = ..., target: _Optional[str] = ...) -> None: ...

class TranslateTextRequest(_message.Message):
    __slots__ = ("contents", "source_language_code", "target_language_code", "mime_type", "glossary", "do_not_translate", "formality", "context", "model")
    CONTENTS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_LANGUAGE_CODE_FIELD_NUMBER: _ClassVar[int]
    TARGET_LANGUAGE_CODE_FIELD_NUMBER: _ClassVar[int]
    MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    GLOSSARY_FIELD_NUMBER: _ClassVar[int]
    DO_NOT_TRANSLATE_FIELD_NUMBER: _ClassVar[int]
    FORMALITY_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    contents: _containers.RepeatedScalarFieldContainer[str]
    source_language_code: str
    target_language_code: str
    mime_type: str
    glossary: _containers.RepeatedCompositeFieldContainer[GlossaryEntry]
    do_not_translate: _containers.RepeatedScalarFieldContainer[str]
    formality: Formality
    context: str
    model: str
    def __init__(self, contents: _Optional[_Iterable[str]] = ..., source_language_code: _Optional[str] = ..., target_language_code: _Optional[str] = ..., mime_type: _Optional[str] = ..., glossary: _Optional[_Iterable[_Union[GlossaryEntry, _Mapping]]] = ..., do_not_translate: _Optional[_Iterable[str]] = ..., formality: _Optional[_Union[Formality, str]] = ..., context: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...

class Translation(_message.Message):
    __slots__ = ("translated_text", "detected_language_code", "detected_language_confidence", "model", "cached", "error")
    TRANSLATED_TEXT_FIELD_NUMBER: _ClassVar[int]
    DETECTED_LANGUAGE_CODE_FIELD_NUMBER: _ClassVar[int]
    DETECTED_LANGUAGE_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    translated_text: str
    detected_language_code: str
    detected_language_confidence: float
    model: str
    cached: bool
    error: str
    def __init__(self, translated_text: _Optional[str] = ..., detected_language_code: _Optional[str] = ..., detected_language_confidence: _Optional[float] = ..., model: _Optional[str] = ..., cached: _Optional[bool] = ..., error: _Optional[str] = ...) -> None: ...

class TranslateTextResponse(_message.Message):
    __slots__ = ("translations",)
    TRANSLATIONS_FIELD_NUMBER: _ClassVar[int]
    translations: _containers.RepeatedCompositeFieldContainer[Translation]
    def __init__(self, translations: _Optional[_Iterable[_Union[Translation, _Mapping]]] = ...) -> None: ...

class DetectLanguageRequest(_message.Message):
    __slots__ = ("contents",)
    CONTENTS_FIELD_NUMBER: _ClassVar[int]
    contents: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, contents: _Optional[_Iterable[str]] = ...) -> None: ...

class DetectedLanguage(_message.Message):
    __slots__ = ("language_code", "confidence")
    LANGUAGE_CODE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    language_code: str
    confidence: float
    def __init__(self, language_code: _Optional[str] = ..., confidence: _Optional[float] = ...) -> None: ...

class Detection(_message.Message):
    __slots__ = ("languages",)
    LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    languages: _containers.RepeatedCompositeFieldContainer[DetectedLanguage]
    def __init__(self, languages: _Optional[_Iterable[_Union[DetectedLanguage, _Mapping]]] = ...) -> None: ...

class DetectLanguageResponse(_message.Message):
    __slots__ = ("detections",)
    DETECTIONS_FIELD_NUMBER: _ClassVar[int]
    detections: _containers.RepeatedCompositeFieldContainer[Detection]
    def __init__(self, detections: _Optional[_Iterable[_Union[Detection, _Mapping]]] = ...) -> None: ...

class ListLanguagesRequest(_message.Message):
    __slots__ = ("display_language_code",)
    DISPLAY_LANGUAGE_CODE_FIELD_NUMBER: _ClassVar[int]
    display_language_code: str
    def __init__(self, display_language_code: _Optional[str] = ...) -> None: ...

class Language(_message.Message):
    __slots__ = ("language_code", "display_name", "supports_source", "supports_target")
    LANGUAGE_CODE_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    SUPPORTS_SOURCE_FIELD_NUMBER: _ClassVar[int]
    SUPPORTS_TARGET_FIELD_NUMBER: _ClassVar[int]
    language_code: str
    display_name: str
    supports_source: bool
    supports_target: bool
    def __init__(self, language_code: _Optional[str] = ..., display_name: _Optional[str] = ..., supports_source: _Optional[bool] = ..., supports_target: _Optional[bool] = ...) -> None: ...

class ListLanguagesResponse(_message.Message):
    __slots__ = ("languages",)
    LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    languages: _containers.RepeatedCompositeFieldContainer[Language]
    def __init__(self, languages: _Optional[_Iterable[_Union[Language, _Mapping]]] = ...) -> None: ...
