"""The public Community Notes data format: file names, column names, enums and dtypes.

This module holds no logic. Every other layer names columns through these constants so that a
renamed or reordered column in X's published files is a one-line change here. Column orders are
those of the reference scorer's schemas (``reference-algorithm.md`` §1.2–1.8); our reader finds
columns by header name, but our writers emit exactly these orders so X's own reader accepts them.
"""

from __future__ import annotations

from enum import IntEnum

# ---------------------------------------------------------------------------------------------
# File names (§1.1, §1.8)
NOTES_FILE = "notes-00000.tsv"
RATINGS_FILE = "ratings-00000.tsv"
RATINGS_GLOB = "ratings-*.tsv"
STATUS_FILE = "noteStatusHistory-00000.tsv"
ENROLLMENT_FILE = "userEnrollment-00000.tsv"
SCORED_NOTES_FILE = "scored_notes.tsv"
HELPFULNESS_SCORES_FILE = "helpfulness_scores.tsv"
NOTE_STATUS_HISTORY_FILE = "note_status_history.tsv"
AUX_NOTE_INFO_FILE = "aux_note_info.tsv"

# The public dumps label every participant column ``participantId``; the reference assigns by
# position, so that header becomes the author (notes, NSH) or the rater (ratings).
PUBLIC_PARTICIPANT_HEADER = "participantId"

# ---------------------------------------------------------------------------------------------
# Enumerations
MISLEADING = "MISINFORMED_OR_POTENTIALLY_MISLEADING"
NOT_MISLEADING = "NOT_MISLEADING"
CLASSIFICATIONS = (MISLEADING, NOT_MISLEADING)

HELPFUL = "HELPFUL"
SOMEWHAT_HELPFUL = "SOMEWHAT_HELPFUL"
NOT_HELPFUL = "NOT_HELPFUL"
HELPFULNESS_LEVELS = {NOT_HELPFUL: 0.0, SOMEWHAT_HELPFUL: 0.5, HELPFUL: 1.0}

RATING_SOURCE_DEFAULT = "DEFAULT"
RATING_SOURCE_POPULATION_SAMPLED = "POPULATION_SAMPLED"
RATING_SOURCES = (RATING_SOURCE_DEFAULT, RATING_SOURCE_POPULATION_SAMPLED)

CRH = "CURRENTLY_RATED_HELPFUL"
CRNH = "CURRENTLY_RATED_NOT_HELPFUL"
NMR = "NEEDS_MORE_RATINGS"
FIRM_REJECT = "FIRM_REJECT"  # internal only; exported as NMR
NEEDS_YOUR_HELP = "NEEDS_YOUR_HELP"  # internal only
STATUSES = (CRH, CRNH, NMR)


class Status(IntEnum):
    """Compact status codes for array kernels (int8). Order is arbitrary but fixed."""

    NMR = 0
    CRH = 1
    CRNH = 2
    FIRM_REJECT = 3
    NEEDS_YOUR_HELP = 4


STATUS_NAMES = {
    Status.NMR: NMR,
    Status.CRH: CRH,
    Status.CRNH: CRNH,
    Status.FIRM_REJECT: FIRM_REJECT,
    Status.NEEDS_YOUR_HELP: NEEDS_YOUR_HELP,
}
STATUS_CODES = {name: code for code, name in STATUS_NAMES.items()}

# Enrollment states and the integer codes the reference writes (§1.5).
ENROLLMENT_STATES = {
    "earnedIn": 0,
    "atRisk": 1,
    "earnedOutNoAcknowledge": 2,
    "earnedOutAcknowledged": 3,
    "newUser": 4,
    "removed": 5,
    "apiTestUser": 6,
    "apiEarnedIn": 7,
    "apiEarnedOut": 8,
}
MODELING_POPULATIONS = ("CORE", "EXPANSION")

# ---------------------------------------------------------------------------------------------
# Rating tags, in TSV order. The not-helpful order must never change (downstream enums).
HELPFUL_TAGS = (
    "helpfulOther",
    "helpfulInformative",
    "helpfulClear",
    "helpfulEmpathetic",
    "helpfulGoodSources",
    "helpfulUniqueContext",
    "helpfulAddressesClaim",
    "helpfulImportantContext",
    "helpfulUnbiasedLanguage",
)
NOT_HELPFUL_TAGS = (
    "notHelpfulOther",
    "notHelpfulIncorrect",
    "notHelpfulSourcesMissingOrUnreliable",
    "notHelpfulOpinionSpeculationOrBias",
    "notHelpfulMissingKeyPoints",
    "notHelpfulOutdated",
    "notHelpfulHardToUnderstand",
    "notHelpfulArgumentativeOrBiased",
    "notHelpfulOffTopic",
    "notHelpfulSpamHarassmentOrAbuse",
    "notHelpfulIrrelevantSources",
    "notHelpfulOpinionSpeculation",
    "notHelpfulNoteNotNeeded",
)
RATING_TAGS = HELPFUL_TAGS + NOT_HELPFUL_TAGS
# Bit position of each tag in RatingMatrix.tags (uint32): TSV order, helpful tags first.
TAG_BIT = {tag: i for i, tag in enumerate(RATING_TAGS)}

# Tie-break priority for explanation tags: higher number wins (§1.6, §3.6).
HELPFUL_TAG_PRIORITY = {
    "helpfulInformative": 8,
    "helpfulClear": 7,
    "helpfulImportantContext": 6,
    "helpfulAddressesClaim": 5,
    "helpfulGoodSources": 4,
    "helpfulEmpathetic": 3,
    "helpfulUniqueContext": 2,
    "helpfulUnbiasedLanguage": 1,
    "helpfulOther": 0,
}
NOT_HELPFUL_TAG_PRIORITY = {
    "notHelpfulOutdated": 12,
    "notHelpfulSpamHarassmentOrAbuse": 11,
    "notHelpfulHardToUnderstand": 10,
    "notHelpfulOffTopic": 9,
    "notHelpfulIncorrect": 8,
    "notHelpfulArgumentativeOrBiased": 7,
    "notHelpfulNoteNotNeeded": 6,
    "notHelpfulMissingKeyPoints": 5,
    "notHelpfulOpinionSpeculationOrBias": 4,
    "notHelpfulOpinionSpeculation": 3,
    "notHelpfulSourcesMissingOrUnreliable": 2,
    "notHelpfulIrrelevantSources": 1,
    "notHelpfulOther": 0,
}

# ---------------------------------------------------------------------------------------------
# Input files, in the reference's column order (§1.2–1.5).
NOTE_REASON_COLUMNS = (
    "misleadingOther",
    "misleadingFactualError",
    "misleadingManipulatedMedia",
    "misleadingOutdatedInformation",
    "misleadingMissingImportantContext",
    "misleadingUnverifiedClaimAsFact",
    "misleadingSatire",
    "notMisleadingOther",
    "notMisleadingFactuallyCorrect",
    "notMisleadingOutdatedButNotWhenWritten",
    "notMisleadingClearlySatire",
    "notMisleadingPersonalOpinion",
)
NOTE_COLUMNS = (
    "noteId",
    "noteAuthorParticipantId",
    "createdAtMillis",
    "tweetId",
    "classification",
    "believable",
    "harmful",
    "validationDifficulty",
    *NOTE_REASON_COLUMNS,
    "trustworthySources",
    "summary",
    "isMediaNote",
    "isCollaborativeNote",
)

RATING_COLUMNS = (
    "noteId",
    "raterParticipantId",
    "createdAtMillis",
    "version",
    "agree",
    "disagree",
    "helpful",
    "notHelpful",
    "helpfulnessLevel",
    *HELPFUL_TAGS,
    *NOT_HELPFUL_TAGS,
    "ratedOnTweetId",
    "ratingSourceBucketed",
    "suggestion",
    "suggestionId",
)
# Legacy ratings (before 2021-06-30) carry helpful/notHelpful and no helpfulnessLevel.
LEGACY_RATING_VALUE_COLUMNS = ("helpful", "notHelpful")

NOTE_STATUS_HISTORY_COLUMNS = (
    "noteId",
    "noteAuthorParticipantId",
    "createdAtMillis",
    "timestampMillisOfFirstNonNMRStatus",
    "firstNonNMRStatus",
    "timestampMillisOfCurrentStatus",
    "currentStatus",
    "timestampMillisOfLatestNonNMRStatus",
    "mostRecentNonNMRStatus",
    "timestampMillisOfStatusLock",
    "lockedStatus",
    "timestampMillisOfRetroLock",
    "currentCoreStatus",
    "currentExpansionStatus",
    "currentGroupStatus",
    "currentDecidedBy",
    "currentModelingGroup",
    "timestampMillisOfMostRecentStatusChange",
    "timestampMillisOfNmrDueToMinStableCrhTime",
    "currentMultiGroupStatus",
    "currentModelingMultiGroup",
    "timestampMinuteOfFinalScoringOutput",
    "timestampMillisOfFirstNmrDueToMinStableCrhTime",
    "abovePcrhThresholdTime",
)
# NSH columns holding text (statuses and the deciding rule); the rest are numbers.
NSH_TEXT_COLUMNS = (
    "firstNonNMRStatus",
    "currentStatus",
    "mostRecentNonNMRStatus",
    "lockedStatus",
    "currentCoreStatus",
    "currentExpansionStatus",
    "currentGroupStatus",
    "currentDecidedBy",
    "currentMultiGroupStatus",
)
# The legacy 23-column layout lacks these two; 22-column files (older still) lack the last three.
NSH_LATE_COLUMNS = ("timestampMillisOfFirstNmrDueToMinStableCrhTime", "abovePcrhThresholdTime")
# The public docs call mostRecentNonNMRStatus by this name (same position).
NSH_ALIASES = {"latestNonNMRStatus": "mostRecentNonNMRStatus"}

ENROLLMENT_COLUMNS = (
    "participantId",
    "enrollmentState",
    "successfulRatingNeededToEarnIn",
    "timestampOfLastStateChange",
    "timestampOfLastEarnOut",
    "modelingPopulation",
    "modelingGroup",
    "numberOfTimesEarnedOut",
)

# ---------------------------------------------------------------------------------------------
# Output files (§1.8), in the reference's column order.
SCORED_NOTES_COLUMNS = (
    "noteId",
    "coreNoteIntercept",
    "coreNoteFactor1",
    "finalRatingStatus",
    "firstTag",
    "secondTag",
    "coreActiveRules",
    "activeFilterTags",
    "classification",
    "createdAtMillis",
    "coreRatingStatus",
    "metaScorerActiveRules",
    "decidedBy",
    "expansionNoteIntercept",
    "expansionNoteFactor1",
    "expansionRatingStatus",
    "coverageNoteIntercept",
    "coverageNoteFactor1",
    "coverageRatingStatus",
    "coreNoteInterceptMin",
    "coreNoteInterceptMax",
    "expansionNoteInterceptMin",
    "expansionNoteInterceptMax",
    "coverageNoteInterceptMin",
    "coverageNoteInterceptMax",
    "groupNoteIntercept",
    "groupNoteFactor1",
    "groupRatingStatus",
    "groupNoteInterceptMax",
    "groupNoteInterceptMin",
    "modelingGroup",
    "numRatings",
    "timestampMillisOfCurrentStatus",
    "expansionPlusNoteIntercept",
    "expansionPlusNoteFactor1",
    "expansionPlusRatingStatus",
    "topicNoteIntercept",
    "topicNoteFactor1",
    "topicRatingStatus",
    "noteTopic",
    "topicNoteConfident",
    "expansionActiveRules",
    "expansionPlusActiveRules",
    "groupActiveRules",
    "topicActiveRules",
    "coreNumFinalRoundRatings",
    "expansionNumFinalRoundRatings",
    "expansionPlusNumFinalRoundRatings",
    "groupNumFinalRoundRatings",
    "topicNumFinalRoundRatings",
    "rescoringActiveRules",
    "multiGroupNoteIntercept",
    "multiGroupNoteFactor1",
    "multiGroupRatingStatus",
    "modelingMultiGroup",
    "multiGroupActiveRules",
    "multiGroupNumFinalRoundRatings",
    "coreWithTopicsNoteFactor1",
    "coreWithTopicsNoteIntercept",
    "coreWithTopicsRatingStatus",
    "coreWithTopicsActiveRules",
    "coreWithTopicsNumFinalRoundRatings",
    "coreWithTopicsNoteInterceptMin",
    "coreWithTopicsNoteInterceptMax",
    "timestampMillisOfNmrDueToMinStableCrhTime",
    "coreNoteInterceptNoHighVol",
    "coreWithTopicsNoteInterceptNoHighVol",
    "expansionNoteInterceptNoHighVol",
    "expansionPlusNoteInterceptNoHighVol",
    "groupNoteInterceptNoHighVol",
    "multiGroupNoteInterceptNoHighVol",
    "topicNoteInterceptNoHighVol",
    "coreNoteInterceptNoCorrelated",
    "coreNoteInterceptPopulationSampled",
    "coreWithTopicsNoteInterceptNoCorrelated",
    "expansionNoteInterceptNoCorrelated",
    "expansionPlusNoteInterceptNoCorrelated",
    "groupNoteInterceptNoCorrelated",
    "multiGroupNoteInterceptNoCorrelated",
    "topicNoteInterceptNoCorrelated",
    "gaussianNoteIntercept",
    "gaussianNoteFactor1",
    "gaussianRatingStatus",
    "gaussianActiveRules",
    "gaussianNoteInterceptNoCorrelated",
    "gaussianNoteInterceptNoHighVol",
    "gaussianNoteInterceptPopulationSampled",
    "gaussianNumFinalRoundRatings",
    "timestampMinuteOfFinalScoringOutput",
    "gaussianCoreWithTopicsNoteIntercept",
    "gaussianCoreWithTopicsNoteFactor1",
    "gaussianCoreWithTopicsRatingStatus",
    "gaussianCoreWithTopicsActiveRules",
    "gaussianCoreWithTopicsNoteInterceptNoHighVol",
    "gaussianCoreWithTopicsNoteInterceptNoCorrelated",
    "gaussianCoreWithTopicsNoteInterceptPopulationSampled",
    "gaussianCoreWithTopicsNumFinalRoundRatings",
    "abovePcrhThresholdTime",
    "pflipProba",
)
# Our own explanation columns, appended after the reference's (a reader by position ignores them).
SCORED_NOTES_EXTRA_COLUMNS = ("decidedByRule", "statusExplanation")

HELPFULNESS_SCORES_COLUMNS = (
    "raterParticipantId",
    "coreRaterIntercept",
    "coreRaterFactor1",
    "crhCrnhRatioDifference",
    "meanNoteScore",
    "raterAgreeRatio",
    "successfulRatingHelpfulCount",
    "successfulRatingNotHelpfulCount",
    "successfulRatingTotal",
    "unsuccessfulRatingHelpfulCount",
    "unsuccessfulRatingNotHelpfulCount",
    "unsuccessfulRatingTotal",
    "ratingsAwaitingMoreRatings",
    "ratedAfterDecision",
    "notesCurrentlyRatedHelpful",
    "notesCurrentlyRatedNotHelpful",
    "notesAwaitingMoreRatings",
    "enrollmentState",
    "successfulRatingNeededToEarnIn",
    "authorTopNotHelpfulTagValues",
    "timestampOfLastStateChange",
    "aboveHelpfulnessThreshold",
    "isEmergingWriter",
    "aggregateRatingReceivedTotal",
    "timestampOfLastEarnOut",
    "groupRaterIntercept",
    "groupRaterFactor1",
    "modelingGroup",
    "raterHelpfulnessReputation",
    "numberOfTimesEarnedOut",
    "expansionRaterIntercept",
    "expansionRaterFactor1",
    "expansionPlusRaterIntercept",
    "expansionPlusRaterFactor1",
    "multiGroupRaterIntercept",
    "multiGroupRaterFactor1",
    "modelingMultiGroup",
    "coreWithTopicsRaterIntercept",
    "coreWithTopicsRaterFactor1",
    "coreFirstRoundRaterIntercept",
    "coreFirstRoundRaterFactor1",
    "crhTotal14d",
    "crnhTotal14d",
    "nmrTotal14d",
    "crhTotal90d",
    "crnhTotal90d",
    "nmrTotal90d",
)

AUX_NOTE_INFO_COLUMNS = (
    "noteId",
    "ratingWeight",
    "createdAtMillis",
    "noteAuthorParticipantId",
    "awaitingBool",
    "numRatingsLast28",
    "numPopulationSampledRatings",
    "currentStatus",
    "crhBool",
    "crnhBool",
    "unlockedRatingStatus",
    "preStabilizationRatingStatus",
    *HELPFUL_TAGS,
    *NOT_HELPFUL_TAGS,
    *(f"{t}Adjusted" for t in NOT_HELPFUL_TAGS),
    *(f"{t}AdjustedRatio" for t in NOT_HELPFUL_TAGS),
    "notHelpfulIncorrect_interval",
    "p_incorrect_user_interval",
    "num_voters_interval",
    "tf_idf_incorrect_interval",
    "lowDiligenceIntercept",
    "coreNegFactor_populationSampledRatingCount",
    "corePosFactor_populationSampledRatingCount",
    "pcrhExitN",
    "pcrhExitProba",
    "pcrhRevoked",
    "pcrhRevokeN",
    "pcrhFinalPred",
)

# ---------------------------------------------------------------------------------------------
# Key time constants (§1.6), milliseconds.
NOTE_LOCK_MILLIS = 14 * 24 * 60 * 60 * 1000
PUBLIC_TSV_TIME_DELAY_MILLIS = 172_800_000
DELETED_NOTE_TOMBSTONES_LAUNCH_MILLIS = 1_652_918_400_000
NOT_MISLEADING_UI_LAUNCH_MILLIS = 1_664_755_200_000
LAST_RATING_TAGS_CHANGE_MILLIS = 1_639_699_200_000
# Timestamps outside this range are not milliseconds since the epoch (seconds or microseconds).
MIN_PLAUSIBLE_MILLIS = 1_000_000_000_000  # 2001-09-09
MAX_PLAUSIBLE_MILLIS = 4_102_444_800_000  # 2100-01-01
